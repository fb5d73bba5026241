"""WSGI entry point for gunicorn."""

import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
application = get_wsgi_application()

# The URLconf imports every view (DRF, drf-spectacular, the admin): about 0.8 s of CPU that Django would otherwise
# spend in each worker's first request. Loaded here, it is paid once per worker at start, or once in all with
# gunicorn --preload (bench/annotator_loop.py measured it on the annotator loop).
get_resolver().url_patterns  # noqa: B018 (the import is the point)
