"""The storage loop knows whose a detached volume is from the instance id its name
carries, for every provider's naming: a volume made for an instance still coming up
(Scaleway makes the data volume before the server) is not an orphan."""

from __future__ import annotations

import uuid

from inventiv_orchestrator.loops.storage import _owner


def test_the_owner_is_read_from_every_provider_s_volume_names() -> None:
    instance = uuid.uuid4()
    for name in (f"{instance}-boot", f"inventiv-{instance}-boot", f"inventiv-{instance}-data"):
        assert _owner(name) == instance, name
    assert _owner("team-b-data") is None
    assert _owner("inventiv-not-an-id-data") is None
