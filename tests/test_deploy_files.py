"""The files around the code stay true to it: compose, Dockerfile, env examples, extras.

No Docker engine runs here, so compose and the Dockerfile are checked by parsing.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

from inventiv_api.settings import ApiSettings
from inventiv_common.settings import CommonSettings
from inventiv_finops.settings import FinopsSettings
from inventiv_orchestrator.settings import OrchestratorSettings
from tests.support.paths import ROOT

APP_SERVICES = {"api": 8003, "orchestrator": 8001, "finops": 8005}
# Variables read outside the settings classes (CLI, images, compose).
OTHER_VARIABLES = {
    "INVENTIV_HOME",
    "INVENTIV_DEV_REDIS_PORT",
    "INVENTIV_MIGRATIONS_DIR",
    "SEED_CATALOG_PATH",
    "BUILD_TIME",
    "SECRETS_DIR",
    "POSTGRES_DB",
}


def settings_variables(cls: type[CommonSettings]) -> set[str]:
    return {
        (f.validation_alias if isinstance(f.validation_alias, str) else name).upper()
        for name, f in cls.model_fields.items()
    }


def worker_variables() -> set[str]:
    """Every variable the worker agent and the mock engine read."""
    names = set()
    for module in ("config.py", "mock_engine.py"):
        text = (ROOT / "worker" / "inventiv_worker" / module).read_text()
        names |= set(re.findall(r'(?:_env|_secret|env)\("([A-Z][A-Z0-9_]+)"', text))
    return names


ALL_VARIABLES = (
    worker_variables()
    | settings_variables(ApiSettings)
    | settings_variables(OrchestratorSettings)
    | settings_variables(FinopsSettings)
    | OTHER_VARIABLES
)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (ROOT / "deploy" / "docker" / "Dockerfile").read_text()


@pytest.mark.parametrize("example", ["dev", "staging", "prod"])
def test_env_examples_document_every_variable(example: str) -> None:
    text = (ROOT / "env" / f"{example}.env.example").read_text()
    mentioned = set(re.findall(r"\b([A-Z][A-Z0-9_]+?)(?:_FILE)?=", text))
    assert ALL_VARIABLES - mentioned == set()


def test_compose_has_every_service_with_a_healthcheck(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == {"db", "redis", *APP_SERVICES}
    for name, service in services.items():
        assert "healthcheck" in service, name


def test_compose_services_read_secrets_from_mounted_files(compose: dict, dockerfile: str) -> None:
    declared = set(compose["secrets"])
    stages = set(re.findall(r"^FROM \S+ AS (\S+)$", dockerfile, re.MULTILINE))
    for name, port in APP_SERVICES.items():
        service = compose["services"][name]
        assert service["build"]["target"] in stages
        assert set(service["secrets"]) <= declared
        env = service["environment"]
        for key, value in env.items():
            if key.endswith("_FILE"):
                assert value.startswith("/run/secrets/")
                assert value.removeprefix("/run/secrets/") in service["secrets"], (name, key)
        # No secret is passed inline.
        assert not set(env) & {"DATABASE_URL", "JWT_SECRET", "PROVIDER_SETTINGS_KEY"}
        assert "DEFAULT_ADMIN_PASSWORD" not in env
        assert str(port) in " ".join(service["healthcheck"]["test"])
    assert "ports" not in compose["services"]["api"], "published only by make api-expose"


def test_dockerfile_is_multi_stage_and_runs_as_non_root(dockerfile: str) -> None:
    assert len(re.findall(r"^FROM ", dockerfile, re.MULTILINE)) >= 3
    users = re.findall(r"^USER (\S+)$", dockerfile, re.MULTILINE)
    assert users and all(not u.startswith(("root", "0")) for u in users)
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for name in APP_SERVICES:
        cmd = re.search(rf"FROM runtime AS {name}\n(?:.*\n)*?CMD \[\"([^\"]+)\"\]", dockerfile)
        assert cmd is not None and cmd.group(1) in scripts


def test_worker_extra_carries_nothing_of_the_control_plane() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["dependencies"] == []
    extra = project["optional-dependencies"]["worker"]
    worker = {re.split(r"[<>=\[]", d)[0].lower() for d in extra}
    assert worker.isdisjoint({"sqlalchemy", "asyncpg", "alembic", "redis", "pgserver", "docker"})


def test_every_dependency_is_pinned() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line
    }
    for extra in project["optional-dependencies"].values():
        for dep in extra:
            name = re.split(r"[<>=\[]", dep)[0].lower().replace("_", "-")
            assert name in pinned, name


def test_readme_starts_with_the_two_commands() -> None:
    first_screen = "\n".join((ROOT / "README.md").read_text().splitlines()[:25])
    assert "make dev" in first_screen
    assert "make test" in first_screen


def test_ci_runs_make_test() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert Path(ROOT / ".ci" / "run").stat().st_mode & 0o111


def test_worker_image_installs_only_the_worker_extra(dockerfile: str) -> None:
    # The image the docker runtime starts: agent and mock engine, no control plane.
    build = re.search(r"AS build-worker\n(?:.*\n)*?.*pip install[^\n]*", dockerfile)
    assert build is not None and '".[worker]"' in build.group(0)
    stage = re.search(r"AS worker\n(?:.*\n)*?CMD \[\"([^\"]+)\"\]", dockerfile)
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert stage is not None and scripts[stage.group(1)] == "inventiv_worker.agent:main"
