"""Settings shared by every environment. Every value that differs between machines comes from the environment."""

from datetime import timedelta
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
    "core.apps.TandemAdminConfig",  # django.contrib.admin with the project-scoped site (core/admin.py)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc as static files of ours, not from a CDN
    "axes",  # login lockout (see "Throttling and lockout")
    "core",
    "annotation",
    "rewards",
    "trainer",
    "evaluation",
    "frontend",
    "demo",  # the demo project and model: seeds every app, imported by none
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
    "core.middleware.ContentSecurityPolicyMiddleware",  # django-csp's, with the admin's and the docs' policies
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks: turns a lockout into its 429 answer
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
# django-axes' backend first: it refuses a locked-out username+address before any password is checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
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

# --- Content-Security-Policy ------------------------------------------------------------
# On every response (django-csp, through core/middleware.py). Our pages load nothing but our own files: no inline
# script or style, no event-handler attributes, no frames, plugins or foreign origins, and Trusted Types make any
# string written to an HTML sink (innerHTML and friends) throw: the second line of defence against model output
# turned into HTML.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'none'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "form-action": ["'self'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "object-src": ["'none'"],
        "require-trusted-types-for": ["'script'"],
        "trusted-types": ["'none'"],
    }
}
# Pages we do not write, by path prefix: the directives replaced there. Django's admin and DRF's browsable API (jQuery)
# and Swagger UI write HTML strings, so no Trusted Types; Swagger UI's and the admin's stylesheets use data: images;
# Redoc starts a worker from a blob: URL. Scripts stay 'self' everywhere.
_CSP_THIRD_PARTY = {"require-trusted-types-for": None, "trusted-types": None, "img-src": ["'self'", "data:"]}
TANDEM_CSP_OVERRIDES = {
    "/admin/": _CSP_THIRD_PARTY,
    "/api/": {**_CSP_THIRD_PARTY, "worker-src": ["'self'", "blob:"]},
    # Redoc's styled-components write <style> elements: inline styles there, never inline script.
    "/api/redoc/": {**_CSP_THIRD_PARTY, "worker-src": ["'self'", "blob:"], "style-src": ["'self'", "'unsafe-inline'"]},
}

# --- Throttling and lockout -----------------------------------------------------------
# API rates (DRF's "N/s", "N/min", "N/hour", "N/day"): per signed-in user, per address for anonymous calls, and per
# user for each heavy endpoint (imports, dataset snapshots, run starts). The defaults are far above what a person or
# a script asks: an annotator working flat out makes ~800 requests a minute. A refused call answers 429
# {"code": "throttled", "detail"} with Retry-After. The counters live in the cache below (core/throttling.py).
TANDEM_THROTTLE_ENABLED = env.bool("TANDEM_THROTTLE_ENABLED", default=True)
TANDEM_THROTTLE_USER = env.str("TANDEM_THROTTLE_USER", default="6000/min")
TANDEM_THROTTLE_ANON = env.str("TANDEM_THROTTLE_ANON", default="120/min")
TANDEM_THROTTLE_HEAVY = env.str("TANDEM_THROTTLE_HEAVY", default="30/min")
# Proxies in front of Django that append the client's address to X-Forwarded-For; 0 trusts no header and counts
# REMOTE_ADDR. The throttles and the login lockout both count the address this gives.
TANDEM_PROXY_COUNT = env.int("TANDEM_PROXY_COUNT", default=0)
# Login lockout (django-axes, on /accounts/login/ and /admin/login/): after this many failed logins for one username
# from one address, that pair is refused, the right password included, until the cool-off has passed since its
# last attempt: 429 with Retry-After (JSON {"code": "locked_out", "detail", "retry_after"} under /api/). A success
# before the limit starts the count again. A superuser lifts a lock with `manage.py axes_reset_username USER`.
TANDEM_LOGIN_FAILURE_LIMIT = env.int("TANDEM_LOGIN_FAILURE_LIMIT", default=5)
TANDEM_LOGIN_COOLOFF_MINUTES = env.int("TANDEM_LOGIN_COOLOFF_MINUTES", default=15)
# API tokens have no username to pair with: failed token authentications are counted per address, and past this many
# within the cool-off every token request from there answers 429 {"code": "locked_out"} (core/lockout.py).
TANDEM_TOKEN_FAILURE_LIMIT = env.int("TANDEM_TOKEN_FAILURE_LIMIT", default=20)
AXES_ENABLED = env.bool("TANDEM_LOGIN_LOCKOUT_ENABLED", default=True)
AXES_FAILURE_LIMIT = TANDEM_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=TANDEM_LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]  # per pair: a stranger cannot lock a user out everywhere
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "core.lockout.lockout_response"
AXES_CLIENT_IP_CALLABLE = "core.throttling.client_address"
AXES_ENABLE_ADMIN = False  # lockouts are lifted with axes' commands; the admin stays limited to Tandem's models
AXES_DISABLE_ACCESS_LOG = True  # failures are what lockout needs; successful logins are not recorded
AXES_VERBOSE = False  # no start-up banner on every command; failures and lockouts are still logged

# --- API ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "annotation.authentication.SqlTokenAuthentication",  # DRF's tokens, looked up in one SQL statement
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "config.schema.TandemAutoSchema",
    "EXCEPTION_HANDLER": "core.api_errors.exception_handler",
    "DEFAULT_PARSER_CLASSES": [
        "core.parsers.TandemJSONParser",  # depth, NUL and surrogate limits (core/parsers.py)
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    # Rates from TANDEM_THROTTLE_* (above), read at each request; heavy views set `throttle_scope`.
    "DEFAULT_THROTTLE_CLASSES": [
        "core.throttling.UserThrottle",
        "core.throttling.AnonThrottle",
        "core.throttling.ScopedThrottle",
    ],
    "NUM_PROXIES": TANDEM_PROXY_COUNT,
}
# The OpenAPI schema and its docs pages (/api/schema/, /api/docs/, /api/redoc/): for logged-in users unless True.
TANDEM_API_DOCS_PUBLIC = env.bool("TANDEM_API_DOCS_PUBLIC", default=False)
SPECTACULAR_SETTINGS = {
    "TITLE": "Tandem API",
    "DESCRIPTION": "Pairwise preference annotation, agreement metrics and training runs.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and Redoc from drf-spectacular-sidecar's static files (a pinned requirement), not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several models have a "status": each choice set gets its own schema name.
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "trainer.models.Status",
        "RunKindEnum": "trainer.models.Kind",
        "SnapshotKindEnum": "rewards.models.DatasetSnapshot.Kind",
    },
    # <id:...> path parameters (core/converters.py) are documented as what they accept: a positive bigint.
    "PATH_CONVERTER_OVERRIDES": {"id": {"type": "integer", "format": "int64", "minimum": 1, "maximum": 2**63 - 1}},
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
    # The transport ignores the host; naming one keeps kombu from warning "No hostname was supplied" on every start.
    CELERY_BROKER_URL = "filesystem://localhost//"
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
# --- Cache: the API throttles' counters -------------------------------------------------
# With REDIS_URL, Redis (TANDEM_CACHE_URL to use another database), under its own key prefix and with short socket
# timeouts: a throttle whose cache does not answer lets the request through. Without it, this process's memory:
# each process then counts on its own, which is right for one web process (make run, tests).
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": env("TANDEM_CACHE_URL", default=REDIS_URL),
            "KEY_PREFIX": "tandem-cache",
            "OPTIONS": {"socket_connect_timeout": 0.25, "socket_timeout": 0.25},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "tandem",
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    }
# Queues and routes live in config/celery.py, next to the app that uses them.
# Beat (`celery -A config beat`, or a worker started with -B) refreshes open batches' agreement snapshots.
CELERY_BEAT_SCHEDULE = {
    "rewards-refresh-open-batches": {
        "task": "rewards.refresh_open_batches",
        "schedule": env.float("TANDEM_SNAPSHOT_REFRESH_SECONDS", default=60.0),
        "options": {"queue": "default"},
    },
    # Checkpoints leaderboards (evaluation/services/leaderboards.py): recomputed for projects whose evaluation data
    # moved since their stored one; the page and the API only read the stored one.
    "evaluation-refresh-due-leaderboards": {
        "task": "evaluation.refresh_due_leaderboards",
        "schedule": env.float("TANDEM_LEADERBOARD_REFRESH_SECONDS", default=30.0),
        "options": {"queue": "default", "expires": 60},
    },
    "trainer-mark-lost-runs": {
        "task": "trainer.mark_lost_runs",
        "schedule": env.float("TANDEM_RUN_LOST_CHECK_SECONDS", default=60.0),
        "options": {"queue": "default"},
    },
    # The task outbox (core/outbox.py): sends what requests stored while the broker was away. A drain that waited
    # a minute in the queue is dropped unrun (expires): a worker back from an outage does not run a backlog of them.
    "core-drain-outbox": {
        "task": "core.drain_outbox",
        "schedule": env.float("TANDEM_OUTBOX_DRAIN_SECONDS", default=5.0),
        "options": {"queue": "default", "expires": 60},
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
# Bounds that refuse a hostile file early (annotation/services/imports.py), all "the whole file or nothing": the
# bytes a gzip may inflate to (and TANDEM_IMPORT_MAX_FILE_BYTES above, the older name, whichever is lower); how
# many times its compressed size (JSONL gzips 3-50 times, a gzip bomb 1,000); lines, blank ones included;
# and the seconds an import may hold the project's import lock before it is refused and the lock released.
TANDEM_IMPORT_MAX_DECOMPRESSED_BYTES = env.int("TANDEM_IMPORT_MAX_DECOMPRESSED_BYTES", default=2 * 1024**3)
TANDEM_IMPORT_MAX_COMPRESSION_RATIO = env.int("TANDEM_IMPORT_MAX_COMPRESSION_RATIO", default=200)
TANDEM_IMPORT_MAX_LINES = env.int("TANDEM_IMPORT_MAX_LINES", default=2_000_000)
TANDEM_IMPORT_TIME_BUDGET_SECONDS = env.float("TANDEM_IMPORT_TIME_BUDGET_SECONDS", default=300.0)
# Request bodies and ids (core/parsers.py, core/ids.py, core/converters.py): JSON nested deeper than this is a
# 400 json_too_deep; a list of ids longer than this is a 400 (the database takes at most 65,535 parameters).
TANDEM_JSON_MAX_DEPTH = env.int("TANDEM_JSON_MAX_DEPTH", default=32)
TANDEM_MAX_IDS_PER_REQUEST = env.int("TANDEM_MAX_IDS_PER_REQUEST", default=1000)
# Open batches get a fresh agreement snapshot every N judgments, or when the last one is this old and stale.
# The annotator loop's `next` and judgment answered without DRF's request cycle for the common request
# (annotation/annotator_fast_path.py); False sends every request through the DRF views.
TANDEM_LOOP_FAST_PATH = env.bool("TANDEM_LOOP_FAST_PATH", default=True)
TANDEM_SNAPSHOT_EVERY_N_JUDGMENTS = env.int("TANDEM_SNAPSHOT_EVERY_N_JUDGMENTS", default=500)
TANDEM_SNAPSHOT_MAX_AGE_SECONDS = env.int("TANDEM_SNAPSHOT_MAX_AGE_SECONDS", default=300)
# Older agreement snapshots of a batch beyond this many are deleted when a new one is stored.
TANDEM_SNAPSHOTS_KEPT_PER_BATCH = env.int("TANDEM_SNAPSHOTS_KEPT_PER_BATCH", default=20)
# Checkpoints leaderboards are recomputed this often (beat) when their data moved; a page that finds a stale one asks
# for a refresh at most once per this many seconds.
TANDEM_LEADERBOARD_REFRESH_SECONDS = CELERY_BEAT_SCHEDULE["evaluation-refresh-due-leaderboards"]["schedule"]
# Training runs: a running run writes a heartbeat every HEARTBEAT seconds (and at its steps); trainer.mark_lost_runs
# marks one whose heartbeat is older than the timeout as lost. (A run's time limit is in its config.)
TANDEM_RUN_HEARTBEAT_SECONDS = env.float("TANDEM_RUN_HEARTBEAT_SECONDS", default=10.0)
TANDEM_RUN_HEARTBEAT_TIMEOUT_SECONDS = env.float("TANDEM_RUN_HEARTBEAT_TIMEOUT_SECONDS", default=300.0)
# A run whose message was sent but that no worker took while the GPU workers sat idle this long is sent once more,
# and failed with the reason the second time (trainer.mark_lost_runs checks).
TANDEM_RUN_QUEUE_TIMEOUT_SECONDS = env.float("TANDEM_RUN_QUEUE_TIMEOUT_SECONDS", default=900.0)
# Worker registry (trainer.models.WorkerCapability, docs/SCALING.md): a GPU worker refreshes its row this often; one
# seen within TANDEM_WORKER_LIVE_INTERVALS of them is live, and runs are checked against live workers before queueing.
TANDEM_WORKER_SEEN_SECONDS = env.float("TANDEM_WORKER_SEEN_SECONDS", default=30.0)
TANDEM_WORKER_LIVE_INTERVALS = env.int("TANDEM_WORKER_LIVE_INTERVALS", default=3)
# What a CPU-only worker offers as processes (gloo) to a multi-process run; empty: os.cpu_count().
TANDEM_WORKER_CPU_PROCESSES = env.int("TANDEM_WORKER_CPU_PROCESSES", default=0)
# Reward-model flags (trainer/flags.py, on the run page and in the runs API): flagged when the lower end of the
# CONFIDENCE interval on its accuracy gain over "prefer the longer answer" is not above MARGIN, or when
# |Spearman correlation| of reward with answer length is above MAX_LENGTH_CORRELATION.
TANDEM_RM_LENGTH_MARGIN = env.float("TANDEM_RM_LENGTH_MARGIN", default=0.02)
TANDEM_RM_LENGTH_CONFIDENCE = env.float("TANDEM_RM_LENGTH_CONFIDENCE", default=0.95)
TANDEM_RM_MAX_LENGTH_CORRELATION = env.float("TANDEM_RM_MAX_LENGTH_CORRELATION", default=0.5)
# Task outbox (core/outbox.py): requests store tasks in the database; they are sent right after the commit when
# the broker answers within the timeout, else by the drain (beat, worker start, `manage.py drain_outbox`), backing
# off from BACKOFF seconds, doubling up to BACKOFF_MAX; after MAX_ATTEMPTS failed sends a message is given up (a
# run then fails "Failed to queue: <reason>"). Sent messages are deleted after KEEP_SENT_DAYS.
TANDEM_OUTBOX_SEND_ON_COMMIT = env.bool("TANDEM_OUTBOX_SEND_ON_COMMIT", default=True)
TANDEM_OUTBOX_SEND_TIMEOUT_SECONDS = env.float("TANDEM_OUTBOX_SEND_TIMEOUT_SECONDS", default=0.5)
TANDEM_OUTBOX_MAX_ATTEMPTS = env.int("TANDEM_OUTBOX_MAX_ATTEMPTS", default=20)
TANDEM_OUTBOX_BACKOFF_SECONDS = env.float("TANDEM_OUTBOX_BACKOFF_SECONDS", default=2.0)
TANDEM_OUTBOX_BACKOFF_MAX_SECONDS = env.float("TANDEM_OUTBOX_BACKOFF_MAX_SECONDS", default=300.0)
TANDEM_OUTBOX_DRAIN_LIMIT = env.int("TANDEM_OUTBOX_DRAIN_LIMIT", default=200)
TANDEM_OUTBOX_KEEP_SENT_DAYS = env.int("TANDEM_OUTBOX_KEEP_SENT_DAYS", default=7)
# Jobs (core/jobs.py): API and admin imports and dataset snapshots run on the `default` worker. A running job whose
# worker wrote no heartbeat for this long is failed as lost when it is next read.
TANDEM_JOB_LOST_SECONDS = env.float("TANDEM_JOB_LOST_SECONDS", default=120.0)
# Models a run may load (trainer/model_paths.py): a succeeded run of its own project (`run:ID`), a folder under one
# of these roots (links out of them refused), or a hub id only when hub models are allowed; otherwise the worker
# runs with huggingface_hub offline. Keep ARTIFACTS_DIR out of the roots: other projects' checkpoints live there.
TANDEM_MODEL_ROOTS = env.list("TANDEM_MODEL_ROOTS", default=[str(Path(VAR_DIR) / "models")])
TANDEM_ALLOW_HUB_MODELS = env.bool("TANDEM_ALLOW_HUB_MODELS", default=False)
# Upper bounds on the sizes that multiply a run's work; a config over one is refused before it is queued (400
# invalid_config naming the field and the limit). The defaults fit one GPU-day. TANDEM_RUN_LIMITS (JSON, e.g.
# '{"max_steps": 5000}') changes some of them; a superuser overrides them per project in the admin (Project run
# limits). Keys are trainer.configs.RUN_LIMIT_FIELDS.
TANDEM_RUN_LIMITS = {
    "time_limit_seconds": 24 * 3600,
    "max_steps": 100_000,
    "epochs": 100,
    "batch_size": 512,
    "eval_batch_size": 512,
    "gradient_accumulation_steps": 256,
    "max_length": 32_768,
    "response_length": 4096,  # tokens generated per PPO/RLOO sample (max_new_tokens)
    "rollout_batch_size": 4096,
    "mini_batch_size": 4096,
    "ppo_epochs": 16,
    "num_generations": 64,
    "lora_r": 512,
}
_run_limits = env.json("TANDEM_RUN_LIMITS", default={})
if not isinstance(_run_limits, dict) or not all(
    key in TANDEM_RUN_LIMITS and type(value) is int and value > 0 for key, value in _run_limits.items()
):
    raise ValueError(f"TANDEM_RUN_LIMITS must map some of {', '.join(TANDEM_RUN_LIMITS)} to positive integers.")
TANDEM_RUN_LIMITS.update(_run_limits)
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024**2
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024**2  # larger uploads stream to a temporary file

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    # An expected refusal (403, 404, 429…) is one line, not a traceback: core.logging.RefusalsInOneLine.
    "filters": {"refusals_in_one_line": {"()": "core.logging.RefusalsInOneLine"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["refusals_in_one_line"],
        }
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
}
