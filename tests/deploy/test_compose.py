"""docker-compose.yml: valid against the Compose Specification, and shaped the way the deployment needs.

The schema is the Compose Specification's JSON schema vendored in deploy/compose-spec.json (from the
check-jsonschema package, which bundles it), so this runs offline and without a Docker engine.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import jsonschema
import pytest

from .support import ROOT, interpolate_defaults, load_yaml

SERVICES = {"db", "rabbitmq", "redis", "mailhog", "minio", "minio-init", "web", "ws", "worker", "beat"}
APP_SERVICES = ("web", "ws", "worker", "beat")
INFRA = ("db", "rabbitmq", "redis")
#: One-shot set-up containers: they run to completion, and the app roles wait for that.
ONE_SHOT = ("minio-init",)


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_yaml("docker-compose.yml")


@pytest.fixture(scope="module")
def schema_validator():
    schema = json.loads((ROOT / "deploy" / "compose-spec.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


@pytest.mark.parametrize("name", ["docker-compose.yml", "docker-compose.dev.yml"])
def test_compose_files_validate_against_the_compose_spec(schema_validator, name):
    errors = sorted(schema_validator.iter_errors(load_yaml(name)), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_the_vendored_schema_catches_mistakes(schema_validator, compose):
    # The validation above is only worth something if the schema rejects what Compose would reject.
    broken = json.loads(json.dumps(compose))
    broken["services"]["web"]["healthcheck"]["intervall"] = "10s"
    broken["services"]["worker"]["depends_on"]["web"]["condition"] = "service_ready"
    messages = [e.message for e in schema_validator.iter_errors(broken)]
    assert any("intervall" in m for m in messages)
    assert any("service_ready" in m for m in messages)


def test_exactly_these_services(compose):
    assert set(compose["services"]) == SERVICES


def test_every_service_has_a_healthcheck(compose):
    for name, service in compose["services"].items():
        check = service.get("healthcheck") or {}
        assert check.get("test"), f"{name} has no healthcheck"
        assert not check.get("disable"), f"{name} disables its healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name


def test_app_services_share_one_image_and_environment_through_the_anchor(compose):
    text = (ROOT / "docker-compose.yml").read_text()
    assert re.search(r"^x-app: &app$", text, re.M)
    for name in APP_SERVICES:
        assert re.search(rf"^  {name}:\n    <<: \*app$", text, re.M), f"{name} does not merge *app"
    anchor = compose["x-app"]
    for name in APP_SERVICES:
        service = compose["services"][name]
        for key in ("image", "build", "env_file", "environment"):
            assert service[key] == anchor[key], f"{name}.{key} differs from x-app"


def test_app_environment_points_at_the_compose_services(compose):
    env = {k: interpolate_defaults(str(v)) for k, v in compose["x-app"]["environment"].items()}
    assert env["DATABASE_URL"] == "postgres://jobops:jobops@db:5432/jobops"
    assert env["CELERY_BROKER_URL"] == "amqp://jobops:jobops@rabbitmq:5672//"
    assert env["CELERY_RESULT_BACKEND"] == "redis://redis:6379/1"
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert (env["EMAIL_HOST"], env["EMAIL_PORT"]) == ("mailhog", "1025")
    assert (env["S3_BUCKET"], env["S3_ENDPOINT_URL"]) == ("jobops-attachments", "http://minio:9000")
    assert compose["x-app"]["env_file"] == ".env"


def test_dependencies_wait_for_healthy_services(compose):
    services = compose["services"]
    for name in APP_SERVICES:
        depends = services[name]["depends_on"]
        assert isinstance(depends, dict), f"{name}: depends_on must use conditions"
        for infra in INFRA:
            assert depends[infra] == {"condition": "service_healthy"}, f"{name} -> {infra}"
        for setup in ONE_SHOT:
            assert depends[setup] == {"condition": "service_completed_successfully"}, f"{name} -> {setup}"
    # ws, workers and beat start only after web has applied the migrations (web is healthy once gunicorn serves).
    for name in ("ws", "worker", "beat"):
        assert services[name]["depends_on"]["web"] == {"condition": "service_healthy"}
    assert services["worker"]["depends_on"]["mailhog"] == {"condition": "service_healthy"}
    for name, service in services.items():
        for target, spec in (service.get("depends_on") or {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            assert spec["condition"] in ("service_healthy", "service_completed_successfully"), (name, target)


def test_migrations_run_once_in_web_never_in_ws_worker_or_beat(compose):
    services = compose["services"]
    for name in APP_SERVICES:
        assert services[name]["command"] == [name]
    for name in ("ws", "worker", "beat"):
        assert "migrate" not in json.dumps(services[name])
    entrypoint = (ROOT / "docker" / "entrypoint.sh").read_text()
    branches = dict(re.findall(r"^    (\w+|\*)\)\n(.*?)^        ;;", entrypoint, re.M | re.S))
    assert set(branches) == {"web", "ws", "worker", "beat", "*"}
    assert "docker/migrate.py" in branches["web"]
    for name in ("ws", "worker", "beat"):
        assert "migrate" not in branches[name]
    # ws is the ASGI process: gunicorn with uvicorn workers on jobops.asgi; web stays on WSGI (gunicorn.conf.py).
    assert "uvicorn_worker.UvicornWorker" in branches["ws"] and "jobops.asgi:application" in branches["ws"]
    assert "jobops.asgi" not in branches["web"]
    assert "pg_advisory_lock" in (ROOT / "docker" / "migrate.py").read_text()


def test_only_web_ws_and_the_mailhog_ui_are_published(compose):
    published = {}
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            parts = interpolate_defaults(str(port)).split(":")
            published.setdefault(name, []).append((parts[0] if len(parts) == 3 else "", int(parts[-1])))
    assert published == {"web": [("127.0.0.1", 8000)], "ws": [("127.0.0.1", 8000)], "mailhog": [("127.0.0.1", 8025)]}
    ws_port = interpolate_defaults(compose["services"]["ws"]["ports"][0]).split(":")
    assert ws_port[1] == "8001"  # published beside web's 8000; inside, every app container listens on 8000
    live_ws = interpolate_defaults(compose["x-app"]["environment"]["LIVE_WS_URL"])
    assert live_ws == "ws://localhost:8001/ws/changes/"


def test_named_volumes_keep_postgres_and_rabbitmq_data(compose):
    declared = set(compose["volumes"])
    mounts = {
        "db": "/var/lib/postgresql/data",
        "rabbitmq": "/var/lib/rabbitmq",
        "beat": "/app/var/beat",
    }
    for name, target in mounts.items():
        volumes = dict(v.split(":", 1)[::-1] for v in compose["services"][name]["volumes"])
        assert target in volumes, f"{name} does not mount {target}"
        assert volumes[target] in declared, f"{name}: {volumes[target]} is not a named volume"
    # RabbitMQ stores data under rabbit@<hostname>: without a fixed hostname a new container ignores the volume.
    assert compose["services"]["rabbitmq"]["hostname"] == "rabbitmq"


def test_images(compose):
    services = compose["services"]
    assert services["db"]["image"].startswith("postgres:16")
    assert services["rabbitmq"]["image"].startswith("rabbitmq:") and "management" in services["rabbitmq"]["image"]
    assert services["redis"]["image"].startswith("redis:")
    assert services["mailhog"]["image"].startswith("mailhog/mailhog")


def test_healthchecks_use_the_documented_probes(compose):
    services = compose["services"]
    tests = {name: " ".join(s["healthcheck"]["test"]) for name, s in services.items()}
    assert "pg_isready" in tests["db"]
    assert "rabbitmq-diagnostics" in tests["rabbitmq"]
    assert "redis-cli ping" in tests["redis"]
    assert "8025/api/v2/messages" in tests["mailhog"]
    for role in APP_SERVICES:
        assert tests[role].endswith(f"docker/healthcheck.py {role}")


def test_dev_file_bind_mounts_the_source_with_live_reload():
    dev = load_yaml("docker-compose.dev.yml")
    web = dev["services"]["web"]
    assert ".:/app" in web["volumes"]
    assert web["environment"]["GUNICORN_RELOAD"] == "1"
    assert web["environment"]["DJANGO_DEBUG"] == "1"
    assert not (ROOT / "docker-compose.override.yml").exists(), "an override file would be applied implicitly"


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose (apt) not installed")
def test_docker_compose_cli_accepts_the_files(tmp_path):
    # Optional second opinion: docker-compose 1.29 also checks types and undeclared volumes.
    for name in ("docker-compose.yml", "docker-compose.dev.yml", ".env.example"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    for files in (["docker-compose.yml"], ["docker-compose.yml", "docker-compose.dev.yml"]):
        args = [arg for f in files for arg in ("-f", f)]
        result = subprocess.run(
            ["docker-compose", *args, "config", "-q"], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr


def test_minio_holds_the_attachments_in_a_private_bucket_created_at_start_up(compose):
    services = compose["services"]
    minio = services["minio"]
    assert minio["image"].startswith("minio/minio:") and minio["command"] == ["server", "/data"]
    assert "mc ready local" in " ".join(minio["healthcheck"]["test"])
    assert not minio.get("ports"), "MinIO stays inside the network"
    volumes = dict(v.split(":", 1)[::-1] for v in minio["volumes"])
    assert volumes["/data"] in compose["volumes"]
    init = services["minio-init"]
    assert init["depends_on"] == {"minio": {"condition": "service_healthy"}}
    script = " ".join(init["command"])
    assert "mc mb --ignore-existing" in script and "mc anonymous set none" in script
    assert init["restart"] == "no"
    # The app and MinIO agree on the credentials and the bucket.
    app_env = {k: interpolate_defaults(str(v)) for k, v in compose["x-app"]["environment"].items()}
    minio_env = {k: interpolate_defaults(str(v)) for k, v in minio["environment"].items()}
    assert minio_env["MINIO_ROOT_USER"] == app_env["S3_ACCESS_KEY_ID"]
    assert minio_env["MINIO_ROOT_PASSWORD"] == app_env["S3_SECRET_ACCESS_KEY"]
    assert interpolate_defaults(str(init["environment"]["S3_BUCKET"])) == app_env["S3_BUCKET"]
