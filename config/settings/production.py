"""Production settings: PostgreSQL, Redis, HTTPS. Refuses to start without a real SECRET_KEY."""

import os

from django.core.exceptions import ImproperlyConfigured

from config.settings.base import *  # noqa: F403
from config.settings.base import REST_FRAMEWORK, env

DEBUG = env.bool("DEBUG", default=False)

# Read directly: django-environ would take a key starting with "$" (one generated key in 50) for a reference to
# another variable and silently replace it.
SECRET_KEY = os.environ.get("SECRET_KEY", "")
_PLACEHOLDER_MARKERS = ("change-me", "changeme", "django-insecure", "secret", "example")
if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5 or any(m in SECRET_KEY.lower() for m in _PLACEHOLDER_MARKERS):
    raise ImproperlyConfigured(
        "SECRET_KEY must be set to a long random value in production "
        '(python -c "from django.core.management.utils import get_random_secret_key as k; print(k())").'
    )

# Behind a TLS-terminating proxy (see docker-compose.yml).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# The proxy appends the client's address to X-Forwarded-For: the throttles and the login lockout count that one,
# not the proxy's (core/throttling.py). Set 0 if nothing sits in front, 2 behind a load balancer and a proxy.
TANDEM_PROXY_COUNT = env.int("TANDEM_PROXY_COUNT", default=1)
REST_FRAMEWORK = {**REST_FRAMEWORK, "NUM_PROXIES": TANDEM_PROXY_COUNT}
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
