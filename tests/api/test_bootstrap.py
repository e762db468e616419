"""Boot-time bootstrap: the first admin and the default organization's credentials."""

from __future__ import annotations

from pathlib import Path

from tests.api.conftest import ADMIN_PASSWORD, start_api


def test_admin_is_created_once_and_never_overwritten(
    empty_database_url: str, tmp_path: Path
) -> None:
    first = start_api(empty_database_url, tmp_path / "a.log")
    try:
        admin = first.login("admin", ADMIN_PASSWORD)
        me = admin.get("/auth/me").json()
        assert me["is_platform_admin"] and me["current_organization_role"] == "owner"
        changed = admin.put(
            "/auth/me/password",
            json={"old_password": ADMIN_PASSWORD, "new_password": "changed-through-the-api"},
        )
        assert changed.status_code == 204
    finally:
        first.process.stop()
    # A restart with another bootstrap password keeps the admin as it is.
    second = start_api(empty_database_url, tmp_path / "b.log", DEFAULT_ADMIN_PASSWORD="other-pw")
    try:
        refused = second.client().post(
            "/auth/login", json={"username": "admin", "password": "other-pw"}
        )
        assert refused.status_code == 401
        second.login("admin", "changed-through-the-api")
    finally:
        second.process.stop()


def test_default_organization_credentials_seeded_from_secret_files(
    empty_database_url: str, tmp_path: Path
) -> None:
    secret_file = tmp_path / "scaleway_secret_key"
    secret_file.write_text("scw-secret-from-a-file-0123456789\n")
    live = start_api(
        empty_database_url,
        tmp_path / "api.log",
        AUTO_SEED_CATALOG="1",
        AUTO_SEED_PROVIDER_CREDENTIALS="1",
        SCALEWAY_ACCESS_KEY="SCWFROMENV0123",
        SCALEWAY_SECRET_KEY_FILE=str(secret_file),
        SCALEWAY_PROJECT_ID="11111111-2222-3333-4444-555555555555",
    )
    try:
        admin = live.login("admin", ADMIN_PASSWORD)
        settings = admin.get("/provider_settings/scaleway").json()
        assert settings["configured"] is True
        assert settings["values"]["secret_key"] == "••••" + "6789"
        assert "scw-secret-from-a-file" not in live.process.output()  # never logged
    finally:
        live.process.stop()
