#!/bin/sh
# JobOps container entrypoint: one image, four roles.
#
#   web     apply migrations (once, under a PostgreSQL advisory lock), then gunicorn with gunicorn.conf.py
#   ws      the ASGI process: gunicorn with uvicorn workers (jobops.asgi) for the live stream /ws/changes/
#           (it serves the HTTP routes too, e.g. /live/ and /readyz/; the REST API stays on `web`, see README)
#   worker  celery worker (consumes the default queue)
#   beat    celery beat (run exactly ONE per deployment)
#   other   run as given, e.g. `python manage.py createsuperuser` or `sh`
#
# Environment (all optional): JOBOPS_MIGRATE_ON_START (1; set 0 where another process migrates; ws never migrates),
# WS_WORKERS (ws: uvicorn worker processes, default the cores: each holds thousands of idle connections),
# CELERY_WORKER_CONCURRENCY (the cores), CELERY_WORKER_NAME (celery@%h), CELERY_BEAT_SCHEDULE_FILE
# (var/beat/celerybeat-schedule), LOG_LEVEL (INFO), JOBOPS_ROLE_FILE (/tmp/jobops-role, read by healthcheck.py).
# The same commands run outside a container (tests/deploy runs them against local services).
set -eu

cd "$(dirname "$0")/.."

role="${1:-web}"
log_level="${LOG_LEVEL:-INFO}"

remember_role() {
    # docker/healthcheck.py reads this to know what to check when the image's HEALTHCHECK runs without a role.
    printf '%s\n' "$1" > "${JOBOPS_ROLE_FILE:-/tmp/jobops-role}" 2>/dev/null || true
}

case "$role" in
    web)
        [ $# -gt 0 ] && shift
        remember_role web
        if [ "${JOBOPS_MIGRATE_ON_START:-1}" = "1" ]; then
            python docker/migrate.py
        fi
        exec gunicorn --config gunicorn.conf.py "$@"
        ;;
    ws)
        shift
        remember_role ws
        # The options given after `ws` come last, so they win over these (gunicorn takes the last one given).
        exec gunicorn --config gunicorn.conf.py --worker-class uvicorn_worker.UvicornWorker \
            --workers "${WS_WORKERS:-$(nproc)}" "$@" jobops.asgi:application
        ;;
    worker)
        shift
        remember_role worker
        set -- --loglevel="$log_level" --hostname="${CELERY_WORKER_NAME:-celery@%h}" "$@"
        if [ -n "${CELERY_WORKER_CONCURRENCY:-}" ]; then
            set -- --concurrency="$CELERY_WORKER_CONCURRENCY" "$@"
        fi
        exec celery -A jobops worker "$@"
        ;;
    beat)
        shift
        remember_role beat
        schedule="${CELERY_BEAT_SCHEDULE_FILE:-var/beat/celerybeat-schedule}"
        mkdir -p "$(dirname "$schedule")"
        # No pidfile: a stale one left by a killed container would stop beat from starting again.
        exec celery -A jobops beat --loglevel="$log_level" --schedule="$schedule" "$@"
        ;;
    *)
        exec "$@"
        ;;
esac
