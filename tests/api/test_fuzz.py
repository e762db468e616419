"""Schemathesis against the real api: every operation of its own OpenAPI spec, fed
generated and mutated input, as an API key holder and as a cookie session.

It fails on any 5xx, on a response the spec does not describe (status, content type,
headers, body schema) and on input the spec forbids being accepted. The run is
reproducible (a fixed seed) and bounded (examples per operation); its figures are
printed. Operations that would end the fuzzing caller's own access or workspace are
left out, each with its reason below; their behaviour has tests of their own. Where a
refusal depends on what no request schema can say (the clock, the database's state, a
rule across two parameters), schemathesis.toml beside this file expects that status
for that operation, each line with its reason.
"""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from inventiv_api.security.permissions import PLATFORM_ADMIN_PERMISSIONS
from inventiv_common.net import free_port
from tests.api.conftest import ADMIN_PASSWORD, LiveApi, start_api
from tests.api.test_permission_matrix import ROUTES
from tests.support.databases import create_database, drop_database
from tests.support.processes import ServiceProcess, clean_env
from tests.support.redis_servers import REDIS_URL

CONFIG = Path(__file__).with_name("schemathesis.toml")
SEED = 20261129
MAX_EXAMPLES = 12
# What fuzzing them would do to the run itself, not to the api: each is tested elsewhere.
EXCLUDED = {
    "POST /auth/logout": "ends the session the run uses",
    "POST /auth/sessions/{session_id}/revoke": "may revoke the session the run uses",
    "PUT /auth/me/password": "changes the password and ends the run's other sessions",
    "PUT /auth/me": "may rename the caller or change their email mid-run",
    "PUT /organizations/current": "moves the run out of its workspace",
    "POST /organizations/current/leave": "takes the caller out of its organization",
    "DELETE /api_keys/{key_id}": "may revoke the key the run uses",
    "PUT /users/{user_id}": "may deactivate or demote the platform admin the run acts as",
    "DELETE /users/{user_id}": "may delete the platform admin the run acts as",
    "PUT /organizations/current/members/{user_id}": "may demote the run's own role",
    "DELETE /organizations/current/members/{user_id}": "may remove the run's own membership",
}


@pytest.fixture(scope="module")
async def fuzz_database_url() -> AsyncIterator[str]:
    """A database of its own: what the fuzzing writes touches no other test."""
    url = await create_database()
    yield url
    await drop_database(url)


@pytest.fixture(scope="module")
def fuzzed_api(
    fuzz_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveApi]:
    """The api and a real orchestrator behind it (the worker routes are relayed to it,
    so they give their own answers, not a 502), on the same database and bus."""
    tmp = tmp_path_factory.mktemp("fuzz")
    orchestrator_port = free_port()
    shared = {
        "REDIS_CHANNEL_PREFIX": f"fuzz-{uuid.uuid4().hex[:8]}:",
        "AUTO_SEED_CATALOG": "1",
        "ORCHESTRATOR_URL": f"http://127.0.0.1:{orchestrator_port}",
    }
    live = start_api(
        fuzz_database_url,
        tmp / "api.log",
        LOGIN_RATE_LIMIT_PER_IP="1000000",
        LOGIN_RATE_LIMIT_PER_ACCOUNT="1000000",
        **shared,
    )
    orchestrator = ServiceProcess(
        "inventiv_orchestrator",
        orchestrator_port,
        clean_env(
            DATABASE_URL=fuzz_database_url,
            REDIS_URL=REDIS_URL,
            INVENTIV_ENV="test",
            INVENTIV_HOME=str(tmp / "home"),
            ORCHESTRATOR_PORT=str(orchestrator_port),
            # The deployments the fuzzing creates fail at once: no mock engine is
            # started mid-run (the lifecycle tests cover provisioning).
            MOCK_FAIL_CREATES="1000000000",
            PROVISION_MAX_ATTEMPTS="1",
            **shared,
        ),
        tmp / "orchestrator.log",
    )
    try:
        orchestrator.wait_ready()
        yield live
    finally:
        orchestrator.stop()
        live.process.stop()


# API keys never administer the platform (a 403 by design, tested in test_api_keys):
# the key's run leaves those operations to the session's run.
PLATFORM_ONLY = {
    f"{route.method} {route.path}"
    for route in ROUTES
    if route.permission in PLATFORM_ADMIN_PERMISSIONS
}


def _run(api: LiveApi, tmp: Path, headers: dict[str, str], excluded: set[str]) -> tuple[int, str]:
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(CONFIG),
        "run",
        f"{api.base_url}/api-docs/openapi.json",
        "--checks",
        "all",
        "--seed",
        str(SEED),
        "--max-examples",
        str(MAX_EXAMPLES),
        "--workers",
        "1",
        "--phases",
        "examples,coverage,fuzzing",
        "--request-timeout",
        "30",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(tmp),
    ]
    for operation in sorted(excluded):
        command += ["--exclude-name", operation]  # schemathesis names it "METHOD /path"
    for name, value in headers.items():
        command += ["--header", f"{name}: {value}"]
    # Its own working directory: schemathesis keeps state beside where it runs.
    done = subprocess.run(command, capture_output=True, text=True, timeout=1500, cwd=tmp)
    return done.returncode, done.stdout + done.stderr


def _figures(output: str) -> str:
    """schemathesis's closing summary: operations, phases, failures, test cases (each
    one request), seed."""
    lines = output.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == "API Operations:"]
    if not starts:
        return output[-2000:]
    summary = []
    for line in lines[starts[-1] :]:
        if line.strip():
            summary.append(line)
        if line.startswith("Seed:"):
            break
    return "\n".join(summary)


@pytest.mark.parametrize("as_", ["api_key", "cookie_session"])
def test_the_spec_holds_under_fuzzing(
    fuzzed_api: LiveApi, tmp_path: Path, capsys: pytest.CaptureFixture[str], as_: str
) -> None:
    owner = fuzzed_api.login("admin", ADMIN_PASSWORD)
    if as_ == "api_key":
        key = owner.post("/api_keys", json={"name": "fuzz"})
        assert key.status_code == 201, key.text
        headers = {"Authorization": f"Bearer {key.json()['key']}"}
    else:
        cookie = "; ".join(f"{c.name}={c.value}" for c in owner.cookies.jar)
        headers = {"Cookie": cookie, "Origin": fuzzed_api.base_url}
    excluded = set(EXCLUDED) | (PLATFORM_ONLY if as_ == "api_key" else set())
    code, output = _run(fuzzed_api, tmp_path, headers, excluded)
    with capsys.disabled():  # the figures show in every run, passing or not
        print(f"\n--- schemathesis as {as_} ---\n{_figures(output)}")
    failures = re.findall(r"^_+ (.+?) _+$", output, flags=re.MULTILINE)
    assert code == 0, output[-20000:]
    assert not failures
