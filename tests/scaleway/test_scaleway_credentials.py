"""An organization's Scaleway credentials are checked as they are saved: the real api
asks the real orchestrator, which asks the fake Scaleway API through the real SDK.
Accepted values are stored and shown verified; refused ones are answered 422 with
Scaleway's reason and not stored; when the check cannot be made now the values are
stored, said pending, and checked once it can be. No value reaches a log."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.lifecycle.conftest import Platform, running_platform
from tests.support.fake_scaleway import (
    DEFAULT_ACCOUNT,
    Account,
    FakeScalewayCloud,
    FakeScalewayServer,
)
from tests.support.waiting import wait_until

READER = Account(
    access_key="SCWFAKEREADONLYKEY01",
    secret_key=str(uuid.uuid4()),
    organization_id=DEFAULT_ACCOUNT.organization_id,
    project_ids=DEFAULT_ACCOUNT.project_ids,
    read_only=True,
)
STRANGER_SECRET = str(uuid.uuid4())  # well formed, unknown to Scaleway
GOOD = {
    "access_key": DEFAULT_ACCOUNT.access_key,
    "secret_key": DEFAULT_ACCOUNT.secret_key,
    "project_id": DEFAULT_ACCOUNT.default_project_id,
}
SECRETS = (DEFAULT_ACCOUNT.secret_key, READER.secret_key, STRANGER_SECRET)
CHECKS = {"action_type": "provider.credentials_checked"}


@pytest.fixture
def cloud() -> Iterator[tuple[FakeScalewayCloud, FakeScalewayServer]]:
    fake = FakeScalewayCloud(accounts=(DEFAULT_ACCOUNT, READER))
    api = FakeScalewayServer(fake).start()
    yield fake, api
    api.stop()


@pytest.fixture
def platform(
    cloud: tuple[FakeScalewayCloud, FakeScalewayServer], empty_database_url: str, tmp_path: Path
) -> Iterator[Platform]:
    """The api and orchestrator, Scaleway's API being the fake; the platform has no
    Scaleway account of its own: each organization saves its own. They log at DEBUG, so
    that what is searched for values below is everything they could say."""
    overrides = {"SCALEWAY_API_URL": cloud[1].url, "LOG_LEVEL": "DEBUG"}
    with running_platform(empty_database_url, tmp_path, None, overrides) as platform:
        yield platform
        # Whatever the test did, no credential reached a process's log.
        logs = [(p.module, p.output()) for p in [platform.api.process, *platform.orchestrators]]
        assert any("provider credentials checked" in logged for _, logged in logs)
        for module, logged in logs:
            for secret in SECRETS:
                assert secret not in logged, module


def save(client: httpx.Client, values: dict[str, Any]) -> httpx.Response:
    return client.put("/provider_settings/scaleway", json={"values": values})


def status(client: httpx.Client) -> dict[str, Any]:
    found: dict[str, Any] = {
        s["provider"]: s for s in client.get("/providers/config-status").json()
    }["scaleway"]
    return found


def test_accepted_credentials_are_stored_and_shown_verified(
    platform: Platform, cloud: tuple[FakeScalewayCloud, FakeScalewayServer]
) -> None:
    fake, _ = cloud
    client = platform.outsider("good-keys")
    assert status(client)["verification"] is None and not status(client)["configured"]

    before = datetime.now(UTC)
    saved = save(client, GOOD)
    assert saved.status_code == 200, saved.text
    assert saved.json()["verification"] == "verified"
    after = datetime.now(UTC)
    shown = status(client)
    assert shown["configured"] and shown["verified"] and shown["verification"] == "verified"
    assert before <= datetime.fromisoformat(shown["last_verified_at"]) <= after
    # Asked of Scaleway: the project's servers read, then a delete of none refused as
    # "not found" (a key that may write).
    assert (
        "DELETE",
        f"/instance/v1/zones/fr-par-2/servers/{'0' * 8}-0000-0000-0000-{'0' * 12}",
        404,
    ) in fake.requests

    [record] = client.get("/action_logs", params=CHECKS).json()
    assert record["status"] == "success"
    assert record["details"] == {"provider": "scaleway", "valid": True, "stored": True}
    # A partial update is checked merged with what is stored.
    zoned = save(client, {"default_zone": "fr-par-2"})
    assert zoned.status_code == 200, zoned.text
    assert len(client.get("/action_logs", params=CHECKS).json()) == 2
    assert datetime.fromisoformat(status(client)["last_verified_at"]) > after


def test_refused_credentials_answer_scaleways_reason_and_store_nothing(
    platform: Platform, cloud: tuple[FakeScalewayCloud, FakeScalewayServer]
) -> None:
    fake, _ = cloud
    client = platform.outsider("bad-keys")

    unknown = save(client, {**GOOD, "secret_key": STRANGER_SECRET})
    assert unknown.status_code == 422, unknown.text
    error = unknown.json()["error"]
    assert error["code"] == "credentials_refused"
    assert error["details"] == {"provider": "scaleway", "cause": "invalid_credentials"}
    assert "authentication is denied" in error["message"]  # what Scaleway said
    assert client.get("/provider_settings/scaleway").json()["values"] == {}

    reader = save(
        client, {**GOOD, "access_key": READER.access_key, "secret_key": READER.secret_key}
    )
    assert reader.status_code == 422, reader.text
    error = reader.json()["error"]
    assert error["details"]["cause"] == "permission_denied"
    assert "insufficient permissions" in error["message"]
    assert client.get("/provider_settings/scaleway").json()["values"] == {}

    asked = len(fake.requests)
    malformed = save(client, {**GOOD, "access_key": "not-a-scaleway-key"})
    assert malformed.status_code == 422, malformed.text
    error = malformed.json()["error"]
    assert error["details"]["cause"] == "credentials_malformed"
    assert "access_key" in error["message"] and "not-a-scaleway-key" not in error["message"]
    assert len(fake.requests) == asked  # not worth asking Scaleway

    # Good values stored, then refused ones tried: the stored ones stay, still verified.
    assert save(client, GOOD).status_code == 200
    assert save(client, {"secret_key": STRANGER_SECRET}).status_code == 422
    stored = client.get("/provider_settings/scaleway").json()
    assert stored["values"]["secret_key"].endswith(DEFAULT_ACCOUNT.secret_key[-4:])
    assert status(client)["verification"] == "verified"
    # Every check is in the workspace's record, the refused ones marked as not stored.
    records = client.get("/action_logs", params=CHECKS).json()
    assert sorted((r["details"]["valid"], r["details"]["stored"]) for r in records) == [
        (False, False),
        (False, False),
        (False, False),
        (False, False),
        (True, True),
    ]
    assert sorted(r["error_code"] for r in records if r["status"] == "failed") == [
        "credentials_malformed",
        "invalid_credentials",
        "invalid_credentials",
        "permission_denied",
    ]
    for recorded in (records, client.get("/audit_logs").json()):
        assert not any(secret in str(recorded) for secret in SECRETS)
    # Scaleway revokes the key: saving again re-checks what is stored, which is now refused.
    fake.faults.reject_credentials = True
    assert save(client, {}).status_code == 422
    shown = status(client)
    assert shown["verification"] == "refused" and not shown["verified"]
    assert "authentication is denied" in shown["verification_reason"]


def test_when_scaleway_cannot_be_asked_values_are_stored_and_checked_later(
    platform: Platform, cloud: tuple[FakeScalewayCloud, FakeScalewayServer]
) -> None:
    fake, _ = cloud
    client = platform.outsider("busy-scaleway")
    # The check while saving tries twice; Scaleway fails both, then answers again.
    fake.faults.fail_next(2, method="GET", path="/instance/v1/zones/*/servers", status=503)
    saved = save(client, GOOD)
    assert saved.status_code == 202, saved.text
    assert saved.json()["verification"] == "pending"
    assert client.get("/provider_settings/scaleway").json()["configured"] is True
    # CMD:CHECK_CREDENTIALS: the orchestrator checks the stored values once it hears it.
    wait_until(lambda: status(client)["verified"], 60, "the stored values checked later")
    [record] = client.get("/action_logs", params=CHECKS).json()
    assert record["component"] == "orchestrator" and record["details"]["valid"] is True


def test_when_the_orchestrator_is_down_values_are_stored_pending(platform: Platform) -> None:
    client = platform.outsider("no-orchestrator")
    [orchestrator] = platform.orchestrators
    orchestrator.stop()
    saved = save(client, GOOD)
    assert saved.status_code == 202, saved.text
    assert saved.json()["verification"] == "pending" and saved.json()["configured"]
    shown = status(client)
    assert shown["verification"] == "pending" and shown["last_verified_at"] is None

    # Back, it checks what is stored when it is saved again, even with no change.
    platform.start_orchestrator()
    again = save(client, {})
    assert again.status_code == 200, again.text
    assert status(client)["verified"]
