# syntax=docker/dockerfile:1
# JobOps: one image for the web (gunicorn), worker (celery worker) and beat (celery beat) roles.
#   docker build -t jobops .
#   docker run --env-file .env -p 8000:8000 jobops web      (see docker-compose.yml for the full stack)

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: dependencies into a virtualenv, static files collected with the production storage ------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1

RUN python -m venv /opt/venv
ENV PATH="/opt/venv/bin:${PATH}"

# Dependencies first: this layer is rebuilt only when requirements.txt changes. Every pinned dependency ships a
# wheel (psycopg[binary] bundles libpq), so no compiler is needed here either.
COPY requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt

WORKDIR /app
COPY . .

# collectstatic imports the settings, which refuse to load with DEBUG off and no real secret key: give this one
# command a throwaway key inline (never an ENV or ARG, so it is not stored in the image's configuration).
# CompressedManifestStaticFilesStorage writes hashed + compressed copies that whitenoise serves.
RUN DJANGO_SECRET_KEY="collectstatic-at-build-time-only-$(date +%s%N)-not-used-at-run-time" \
    DJANGO_DEBUG=0 \
    DATABASE_URL="sqlite:////tmp/collectstatic.sqlite3" \
    python manage.py collectstatic --noinput --verbosity 1 \
    && python -m compileall -q -j 0 /app

# ---- runtime: the virtualenv (bytecode compiled by pip), the code and the collected static files; not root -----
FROM ${PYTHON_IMAGE} AS runtime

ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=jobops.settings.base \
    PORT=8000

RUN groupadd --system --gid 10001 jobops \
    && useradd --system --uid 10001 --gid jobops --home-dir /app --no-create-home --shell /usr/sbin/nologin jobops

COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --from=build /app /app
# The only place the app writes to: beat's schedule (a named volume in docker-compose.yml) and the embedded
# default's SQLite/email sink when no DATABASE_URL/EMAIL_HOST is given. The code itself stays read-only for jobops.
RUN mkdir -p /app/var/beat && chown -R jobops:jobops /app/var

USER 10001:10001

EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "/app/docker/healthcheck.py"]

ENTRYPOINT ["/app/docker/entrypoint.sh"]
CMD ["web"]
