# One image for web, worker and gpu-worker (see docker-compose.yml).
# On a GPU host, pip resolves torch==2.13.0 from PyPI to the CUDA build; the NVIDIA runtime provides the driver.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=config.settings.production \
    TANDEM_VAR_DIR=/var/lib/tandem \
    ARTIFACTS_DIR=/var/lib/tandem/artifacts \
    STATIC_ROOT=/app/staticfiles \
    HF_HOME=/var/lib/tandem/hf-cache

WORKDIR /app
RUN useradd --system --uid 1000 --create-home --home-dir /home/tandem tandem

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# Static files are collected into the image: production settings need a SECRET_KEY, so a throwaway one is made
# for this one command and never stored.
RUN SECRET_KEY="$(python -c 'from django.core.management.utils import get_random_secret_key as k; print(k())')" \
        python manage.py collectstatic --noinput \
    && mkdir -p /var/lib/tandem/artifacts /var/lib/tandem/hf-cache \
    && chown -R tandem:tandem /var/lib/tandem

USER tandem
EXPOSE 8000
CMD ["gunicorn", "config.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
