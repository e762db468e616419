"""Settings: secrets from files, and refusing unsafe secrets outside dev mode."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from inventiv_api.settings import ApiSettings
from inventiv_common.settings import (
    DEV_SECRET_FALLBACK,
    ConfigError,
    async_database_url,
    load_settings,
)
from inventiv_orchestrator.settings import OrchestratorSettings
from tests.support.processes import clean_env

STRONG = "s" * 48


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("JWT_SECRET", "PROVIDER_SETTINGS_KEY", "INVENTIV_ENV", "DEFAULT_ADMIN_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"{name}_FILE", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1/x")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")


def test_secret_is_read_from_its_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "jwt"
    secret_file.write_text(STRONG + "\n")
    monkeypatch.setenv("JWT_SECRET_FILE", str(secret_file))
    settings = load_settings(ApiSettings)
    assert settings.jwt_secret is not None
    assert settings.jwt_secret.get_secret_value() == STRONG
    assert STRONG not in repr(settings)  # secrets never print


def test_secret_and_its_file_together_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = tmp_path / "jwt"
    secret_file.write_text(STRONG)
    monkeypatch.setenv("JWT_SECRET_FILE", str(secret_file))
    monkeypatch.setenv("JWT_SECRET", STRONG)
    with pytest.raises(ConfigError, match="JWT_SECRET and JWT_SECRET_FILE are both set"):
        load_settings(ApiSettings)


def test_unreadable_secret_file_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVIDER_SETTINGS_KEY_FILE", "/nonexistent/key")
    with pytest.raises(ConfigError, match="PROVIDER_SETTINGS_KEY_FILE=/nonexistent/key"):
        load_settings(ApiSettings)


@pytest.mark.parametrize("value", [None, "", "change-me", DEV_SECRET_FALLBACK, "short-secret"])
def test_prod_refuses_missing_default_or_weak_jwt_secret(
    value: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INVENTIV_ENV", "prod")
    monkeypatch.setenv("PROVIDER_SETTINGS_KEY", STRONG)
    if value is not None:
        monkeypatch.setenv("JWT_SECRET", value)
    settings = load_settings(ApiSettings)
    with pytest.raises(ConfigError, match="JWT_SECRET") as excinfo:
        settings.check_ready_to_start()
    assert "\n" not in str(excinfo.value)


def test_staging_refuses_missing_provider_settings_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVENTIV_ENV", "staging")
    settings = load_settings(OrchestratorSettings)
    with pytest.raises(ConfigError, match="PROVIDER_SETTINGS_KEY"):
        settings.check_ready_to_start()


def test_prod_accepts_strong_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVENTIV_ENV", "prod")
    monkeypatch.setenv("JWT_SECRET", STRONG)
    monkeypatch.setenv("PROVIDER_SETTINGS_KEY", "k" * 40)
    load_settings(ApiSettings).check_ready_to_start()


def test_dev_falls_back_to_the_dev_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(ApiSettings)
    settings.check_ready_to_start()
    assert settings.secret("jwt_secret") == DEV_SECRET_FALLBACK


def test_bad_value_becomes_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_PORT", "eighty")
    with pytest.raises(ConfigError, match="API_PORT"):
        load_settings(ApiSettings)


def test_database_url_forms() -> None:
    assert async_database_url("postgres://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert (
        async_database_url("postgresql://postgres:@/postgres?host=/tmp/x")
        == "postgresql+asyncpg://postgres:@/postgres?host=/tmp/x"
    )
    with pytest.raises(ConfigError):
        async_database_url("mysql://u@h/db")


def test_service_process_refuses_to_start_with_one_line() -> None:
    env = clean_env(
        INVENTIV_ENV="prod",
        DATABASE_URL="postgresql://postgres@127.0.0.1:5432/postgres",
        REDIS_URL="redis://127.0.0.1:6379/0",
        PROVIDER_SETTINGS_KEY=STRONG,
    )
    done = subprocess.run(
        [sys.executable, "-m", "inventiv_api"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("inventiv-api: refusing to start in prod mode: JWT_SECRET")
