"""The agent checksum the orchestrator expects is the one the agent computes."""

from __future__ import annotations


def test_control_plane_expects_the_checksum_the_agent_reports() -> None:
    """Two programs compute it (they must not import each other): they must agree."""
    from inventiv_common.agent_checksum import expected_agent_checksum
    from inventiv_worker.version import code_checksum

    assert expected_agent_checksum() == code_checksum()
    assert len(code_checksum()) == 64
