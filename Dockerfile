# Production image: gunicorn, Celery worker and beat all run from it (see docker-compose.yml).
# postgresql-client: pg_dump/pg_restore for backup_database; its major version must be at least
# the server's (Debian trixie's 17 for the compose file's PostgreSQL 16; bookworm's 15 would be
# refused, hence the pinned Debian release).
FROM python:3.12-slim-trixie

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DJANGO_SETTINGS_MODULE=config.settings.production

RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq5 curl postgresql-client \
        libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-noto-core \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 kontor

WORKDIR /app
COPY requirements/ requirements/
RUN pip install -r requirements/production.txt

COPY . .
# collectstatic needs settings to load, not real services or secrets.
RUN SECRET_KEY=collectstatic-only DATABASE_URL=sqlite:////tmp/build.sqlite3 \
    REDIS_URL=redis://localhost:6379/0 python manage.py collectstatic --noinput \
    && mkdir -p /app/var/backups /app/media && chown -R kontor:kontor /app/var /app/media

USER kontor
EXPOSE 8000
# No HEALTHCHECK here: worker and beat run from this image too and serve no HTTP.
# docker-compose.yml gives the web service its own.
CMD ["gunicorn", "config.wsgi:application", "--config", "config/gunicorn.py"]
