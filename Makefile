# JobOps developer commands. `make run` and `make test` work on a fresh machine with Python 3.11+.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
HOST ?= 127.0.0.1
PORT ?= 8000
# An empty HOST= or PORT= (from the environment, say) means the default, not a broken address.
HOST := $(or $(HOST),127.0.0.1)
PORT := $(or $(PORT),8000)
# The embedded default: SQLite under var/, in-process tasks, console email. A local secret, DEBUG on.
# The code make run watches for changes (the apps, not .venv or var/).
APPS := accounts audit equipment jobs jobops notifications tasks
RUN_ENV := DJANGO_DEBUG=1 DJANGO_SECRET_KEY=local-dev-$(shell hostname)-jobops-embedded-default-key

.PHONY: run test install install-dev lint format check-schema bench drill clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt $(BIN)/activate
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(BIN)/activate
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

## make run: install, migrate the embedded SQLite database, seed demo data and serve on http://$(HOST):$(PORT)
## Quiet on purpose: what runs, where, how to log in, then one log line per request (LOG_FORMAT=plain).
## One ASGI process (uvicorn, code reload on) serves the REST API, /live/ and the WebSocket /ws/changes/, woken
## through the in-memory channel layer (Django's runserver cannot serve WebSockets).
run: install
	@mkdir -p var
	@echo "JobOps, the embedded default: SQLite in var/db.sqlite3, Celery tasks in-process, emails written to var/mail/"
	@$(RUN_ENV) $(PY) manage.py migrate --noinput -v 0
	@$(RUN_ENV) LOG_LEVEL=WARNING $(PY) manage.py seed_demo --base-url http://$(HOST):$(PORT)
	@echo "Serving on http://$(HOST):$(PORT)/ (uvicorn: the API, the live page /live/ and the WebSocket /ws/changes/; stop with Ctrl-C)."
	@$(RUN_ENV) LOG_FORMAT=plain $(BIN)/uvicorn jobops.asgi:application --host $(HOST) --port $(PORT) \
		--no-server-header --no-access-log --log-level warning --lifespan off \
		--reload $(foreach app,$(APPS),--reload-dir $(app))

## make test: install everything and run the whole test suite (SQLite unless DATABASE_URL says otherwise)
test: install-dev
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

check-schema: install-dev
	DJANGO_SETTINGS_MODULE=jobops.settings.test $(PY) manage.py spectacular --validate --fail-on-warn --file /dev/null

bench: install-dev
	$(PY) bench/run.py $(BENCH_ARGS)

## make drill: the scale-out drill (ops/drill.py): 2 web + 2 ASGI nodes, 2 workers and beat on a PostgreSQL primary
## with a streaming standby, RabbitMQ and Redis behind fault proxies; DURATION seconds of mixed load with faults, then
## the checks, a login storm, and var/drill/REPORT.md + timeline.png. Needs the local RabbitMQ and Redis, root (the
## PostgreSQL pair runs as the postgres user) and Debian's PostgreSQL binaries. DRILL_ARGS: more options (--help).
DURATION ?= 240
drill: install-dev
	$(BIN)/pip install --quiet -r bench/requirements.txt
	$(PY) ops/drill.py --duration $(DURATION) $(DRILL_ARGS)

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache .coverage
