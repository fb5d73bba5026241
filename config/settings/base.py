"""Settings shared by every environment. Every value that differs between machines comes from the environment."""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()
# A developer may keep local overrides in .env; production passes real environment variables.
env.read_env(BASE_DIR / ".env", overwrite=False)

VAR_DIR = env.path("TANDEM_VAR_DIR", default=str(BASE_DIR / "var"))
Path(VAR_DIR).mkdir(parents=True, exist_ok=True)

# --- Core -----------------------------------------------------------------------------
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# SECRET_KEY is set by each environment's module: there is no default secret in the code.

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "annotation",
    "rewards",
    "trainer",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{Path(VAR_DIR) / 'tandem.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web and worker share the file: WAL lets readers go on while one writer writes, and
    # IMMEDIATE transactions take the write lock up front instead of failing halfway.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    # Parameters bound by the server and statements prepared on a connection's fifth use: PostgreSQL then parses
    # and plans the annotator loop's statements once per connection instead of on every request, which was over
    # half of its CPU per statement (bench/annotator_loop.py). Behind a transaction-mode pooler that cannot keep
    # prepared statements (PgBouncer before 1.21), set DATABASE_PREPARE_THRESHOLD to an empty value.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "server_side_binding": True,
            "prepare_threshold": env.int("DATABASE_PREPARE_THRESHOLD", default=5)
            if env.str("DATABASE_PREPARE_THRESHOLD", default="5")
            else None,
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth -----------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

# --- I18n and static files ------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=str(Path(VAR_DIR) / "static"))
Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- API ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "annotation.authentication.SqlTokenAuthentication",  # DRF's tokens, looked up in one SQL statement
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "config.schema.TandemAutoSchema",
    "EXCEPTION_HANDLER": "annotation.api_errors.exception_handler",
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tandem API",
    "DESCRIPTION": "Pairwise preference annotation, agreement metrics and training runs.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Several models have a "status": each choice set gets its own schema name.
    "ENUM_NAME_OVERRIDES": {"RunStatusEnum": "trainer.models.Status", "RunKindEnum": "trainer.models.Kind"},
}

# --- Celery ---------------------------------------------------------------------------
# Without REDIS_URL the broker is kombu's filesystem transport: no server to run.
REDIS_URL = env("REDIS_URL", default="")
CELERY_BROKER_DIR = Path(VAR_DIR) / "broker"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=43200)}
else:
    for sub in ("out", "processed", "results", "control"):
        (CELERY_BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "out"),
        "data_folder_out": str(CELERY_BROKER_DIR / "out"),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "store_processed": False,
    }
    CELERY_RESULT_BACKEND = f"file://{CELERY_BROKER_DIR / 'results'}"
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_TRACK_STARTED = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Queues and routes live in config/celery.py, next to the app that uses them.
# Beat (`celery -A config beat`, or a worker started with -B) refreshes open batches' agreement snapshots.
CELERY_BEAT_SCHEDULE = {
    "rewards-refresh-open-batches": {
        "task": "rewards.refresh_open_batches",
        "schedule": env.float("TANDEM_SNAPSHOT_REFRESH_SECONDS", default=60.0),
        "options": {"queue": "default"},
    },
    "trainer-mark-lost-runs": {
        "task": "trainer.mark_lost_runs",
        "schedule": env.float("TANDEM_RUN_LOST_CHECK_SECONDS", default=60.0),
        "options": {"queue": "default"},
    },
}
# Training tasks take hours: a worker reserves one message at a time (the GPU worker's command says so too).
CELERY_WORKER_PREFETCH_MULTIPLIER = 1

# --- Tandem ---------------------------------------------------------------------------
ARTIFACTS_DIR = env.path("ARTIFACTS_DIR", default=str(Path(VAR_DIR) / "artifacts"))
Path(ARTIFACTS_DIR).mkdir(parents=True, exist_ok=True)
# Import limits: a file over the first is refused whole; a text field over the second is a bad line.
TANDEM_IMPORT_MAX_FILE_BYTES = env.int("TANDEM_IMPORT_MAX_FILE_BYTES", default=2 * 1024**3)
TANDEM_IMPORT_MAX_TEXT_CHARS = env.int("TANDEM_IMPORT_MAX_TEXT_CHARS", default=100_000)
TANDEM_IMPORT_CHUNK_SIZE = env.int("TANDEM_IMPORT_CHUNK_SIZE", default=2000)
# Open batches get a fresh agreement snapshot every N judgments, or when the last one is this old and stale.
# The annotator loop's `next` and judgment answered without DRF's request cycle for the common request
# (annotation/annotator_fast_path.py); False sends every request through the DRF views.
TANDEM_LOOP_FAST_PATH = env.bool("TANDEM_LOOP_FAST_PATH", default=True)
TANDEM_SNAPSHOT_EVERY_N_JUDGMENTS = env.int("TANDEM_SNAPSHOT_EVERY_N_JUDGMENTS", default=500)
TANDEM_SNAPSHOT_MAX_AGE_SECONDS = env.int("TANDEM_SNAPSHOT_MAX_AGE_SECONDS", default=300)
# Older agreement snapshots of a batch beyond this many are deleted when a new one is stored.
TANDEM_SNAPSHOTS_KEPT_PER_BATCH = env.int("TANDEM_SNAPSHOTS_KEPT_PER_BATCH", default=20)
# Training runs: a running run writes a heartbeat every HEARTBEAT seconds (and at its steps); trainer.mark_lost_runs
# marks one whose heartbeat is older than the timeout as lost. (A run's time limit is in its config.)
TANDEM_RUN_HEARTBEAT_SECONDS = env.float("TANDEM_RUN_HEARTBEAT_SECONDS", default=10.0)
TANDEM_RUN_HEARTBEAT_TIMEOUT_SECONDS = env.float("TANDEM_RUN_HEARTBEAT_TIMEOUT_SECONDS", default=300.0)
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024**2
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024**2  # larger uploads stream to a temporary file

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
}
