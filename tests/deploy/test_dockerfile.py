"""The Dockerfile's essentials, checked by reading it (there is no Docker engine on CI)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import pytest

from .support import ROOT

SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|API_KEY|SIGNING_KEY|PRIVATE", re.I)


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with line continuations joined and comments dropped."""
    logical: list[str] = []
    buffer = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            buffer += line[:-1].rstrip() + " "
            continue
        logical.append(buffer + line)
        buffer = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.match(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", args, re.I)
            assert match, line
            base = re.sub(r"\$\{(\w+)\}", lambda m: global_args.get(m[1], m[0]), match[1])
            stages.append(Stage(base=base, name=match[2] or str(len(stages))))
        elif not stages:
            if keyword == "ARG" and "=" in args:
                name, _, value = args.partition("=")
                global_args[name.strip()] = value.strip()
        else:
            stages[-1].instructions.append((keyword, args))
    return global_args, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile((ROOT / "Dockerfile").read_text())[1]


def test_multi_stage_on_a_slim_python_311_base(stages):
    assert len(stages) >= 2
    for stage in stages:
        assert re.fullmatch(r"python:3\.11-slim(-\w+)?", stage.base), stage.base
    final = stages[-1]
    assert any(args.startswith(f"--from={stages[0].name} ") for args in final.args("COPY"))


def test_final_stage_runs_as_a_non_root_user(stages):
    users = stages[-1].args("USER")
    assert users, "the final stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    # A numeric uid lets Kubernetes' runAsNonRoot verify it without reading /etc/passwd.
    assert user.isdigit()


def test_no_build_tools_or_package_installs_in_the_final_stage(stages):
    final_runs = " ".join(stages[-1].args("RUN"))
    for tool in ("apt-get install", "apk add", "pip install", "gcc", "build-essential", "make "):
        assert tool not in final_runs, f"final stage runs {tool!r}"
    for stage in stages:
        runs = " ".join(stage.args("RUN"))
        if "pip install" in runs:
            # Dependencies are pinned: installing anything but the requirements file would drift.
            assert "-r /tmp/requirements.txt" in runs


def test_static_files_are_collected_at_build_time(stages):
    build_runs = [run for stage in stages[:-1] for run in stage.args("RUN")]
    collect = [run for run in build_runs if "collectstatic" in run]
    assert collect and "--noinput" in collect[0]
    # With DEBUG off, so the hashed/compressed whitenoise storage is the one that runs.
    assert "DJANGO_DEBUG=0" in collect[0]
    assert any("/app" in args for args in stages[-1].args("COPY") if args.startswith("--from="))


def test_healthcheck_entrypoint_and_default_command(stages):
    final = stages[-1]
    healthchecks = final.args("HEALTHCHECK")
    assert healthchecks and "docker/healthcheck.py" in healthchecks[-1]
    assert final.args("ENTRYPOINT") == ['["/app/docker/entrypoint.sh"]']
    assert final.args("CMD") == ['["web"]']
    assert os.access(ROOT / "docker" / "entrypoint.sh", os.X_OK), "docker/entrypoint.sh must be executable"
    assert "8000" in " ".join(final.args("EXPOSE"))


def secret_looking_env_and_args(text: str) -> dict[str, str]:
    """ENV and ARG names that look like secrets, with their values (they would be stored in the image)."""
    global_args, stages = parse_dockerfile(text)
    declared = dict(global_args)
    for stage in stages:
        for keyword, args in stage.instructions:
            if keyword in ("ENV", "ARG"):
                for name, value in re.findall(r"(\w+)=(\"[^\"]*\"|\S+)", args):
                    declared[name] = value
    return {name: value for name, value in declared.items() if SECRET_NAME.search(name)}


def test_no_secret_values_in_env_or_arg():
    leaked = secret_looking_env_and_args((ROOT / "Dockerfile").read_text())
    assert not leaked, f"secret-looking ENV/ARG in the Dockerfile: {leaked}"


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_build_context():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    for entry in (".env", ".git", ".venv", "var", "staticfiles"):
        assert entry in ignored, f".dockerignore lacks {entry}"


def test_the_checks_see_a_bad_dockerfile():
    # The checks above are only as good as the parser: a single-stage root image with a baked secret is caught.
    bad = 'FROM python:3.11\nENV DJANGO_SECRET_KEY=abc \\\n    OTHER=1\nARG DB_PASSWORD=hunter2\nCMD ["web"]\n'
    _, stages = parse_dockerfile(bad)
    assert len(stages) == 1 and not stages[0].args("USER")
    assert secret_looking_env_and_args(bad) == {"DJANGO_SECRET_KEY": "abc", "DB_PASSWORD": "hunter2"}
