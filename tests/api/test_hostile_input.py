"""Hostile input on the REST routes gets a clear 4xx in the REST envelope, never a 500,
never a long echo of itself, and never lands in the database.

- text PostgreSQL cannot store (NUL, unpaired surrogates), wherever it is: 400
  `unstorable_text`, refused once for every route;
- numbers past what a column holds, NaN and Infinity, unbounded offsets: 422;
- emails, names and moments that are not what they claim, loose booleans: 422;
- a private model taking a public model's id: 409;
- a body that is not JSON: 400 `invalid_json`.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from inventiv_api.middleware import StorableText
from tests.api.conftest import World, create_user

JSON = {"Content-Type": "application/json"}
# An error quotes what it refuses in a few dozen characters: a few KB is generous.
SHORT_ANSWER = 4000


def refused(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, (response.request.url, response.text[:500])
    assert len(response.content) < SHORT_ANSWER, len(response.content)
    error = response.json()["error"]
    assert error["message"], response.text
    if code is not None:
        assert error["code"] == code, response.text
    return error


# --- text PostgreSQL cannot store ------------------------------------------------------


NUL_CASES = [
    ("anonymous", "POST", "/auth/login", {"json": {"username": "ad\x00min", "password": "x"}}),
    ("anonymous", "POST", "/auth/login", {"json": {"email": "a\x00@x", "password": "x"}}),
    ("owner", "POST", "/organizations", {"json": {"name": "a\x00b"}}),
    ("owner", "POST", "/api_keys", {"json": {"name": "a\x00b"}}),
    ("owner", "POST", "/api_keys", {"json": {"name": "ok", "allowed_models": ["x\x00"]}}),
    ("owner", "PUT", "/auth/me", {"json": {"first_name": "a\x00"}}),
    ("owner", "PUT", "/provider_settings/scaleway", {"json": {"values": {"access_key": "\x00"}}}),
    ("owner", "GET", "/action_logs", {"params": {"action_type": "a\x00b"}}),
    ("owner", "GET", "/action_logs/search", {"params": {"action_type": "a\x00b"}}),
    ("owner", "GET", "/audit_logs", {"params": {"action": "a\x00b"}}),
    ("owner", "GET", "/audit_logs", {"params": {"resource_type\x00": "x"}}),
    ("owner", "POST", "/organizations/invitations/inv_a%00b/accept", {}),
    # A key in the body, not only a value.
    ("owner", "POST", "/api_keys", {"content": b'{"name": "ok", "x\\u0000": 1}'}),
]


@pytest.mark.parametrize(
    ("actor", "method", "path", "kwargs"), NUL_CASES, ids=[f"{c[1]} {c[2]}" for c in NUL_CASES]
)
def test_a_nul_anywhere_is_refused_once_for_every_route(
    world: World, actor: str, method: str, path: str, kwargs: dict
) -> None:
    client = world.api.client() if actor == "anonymous" else world[actor]
    if "content" in kwargs:
        kwargs = {**kwargs, "headers": JSON}
    error = refused(client.request(method, path, **kwargs), 400, "unstorable_text")
    assert "\x00" not in str(error)  # not even quoted back


@pytest.mark.parametrize(
    "body",
    [
        b'{"name": "lone \\ud800 high"}',  # an escaped surrogate without its pair
        b'{"name": "lone \\udc00 low"}',
        b'{"name": "raw \xed\xa0\x80"}',  # a surrogate written raw (CESU-8)
    ],
)
def test_an_unpaired_surrogate_is_refused(world: World, body: bytes) -> None:
    refused(world["owner"].post("/organizations", content=body, headers=JSON), 400)


def test_text_that_only_looks_like_it_is_accepted(world: World) -> None:
    # A surrogate pair is one character (an emoji); "\\u0000" is six plain characters.
    body = '{"name": "\\ud83d\\ude00 literally \\\\u0000", "expires_at": null}'
    created = world["owner"].post("/api_keys", content=body.encode(), headers=JSON)
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "\U0001f600 literally \\u0000"
    korean = world["owner"].post("/api_keys", json={"name": "키 한국"}, headers=JSON)
    assert korean.status_code == 201 and korean.json()["name"] == "키 한국"


def test_worker_bodies_relayed_to_the_orchestrator_are_checked_too(world: World) -> None:
    # No orchestrator runs beside this api (502 otherwise): the guard answers first.
    beat = world.api.client().post(
        "/internal/worker/heartbeat",
        json={"phase": "ready\x00", "agent_version": "1"},
        headers={"Authorization": "Bearer wt_x"},
    )
    refused(beat, 400, "unstorable_text")


@pytest.mark.parametrize("path", ["/internal/worker/heartbeat", "/internal/worker/register"])
@pytest.mark.parametrize(
    "body", [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 5_000 + b"1" + b"}" * 5_000]
)
def test_worker_bodies_nested_past_any_parser_are_a_400(
    world: World, path: str, body: bytes
) -> None:
    # Before any credential is checked: the orchestrator reads the body first.
    answer = world.api.client().post(
        path, content=body, headers={**JSON, "Authorization": "Bearer bogus"}
    )
    assert answer.status_code == 400, answer.text[:300]
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["error"]["message"] == "body must be JSON"


def test_a_nul_in_a_header_is_refused_by_the_guard_too() -> None:
    """uvicorn's parser refuses a NUL in a header before the app sees it (a plain-text
    400); the guard checks headers anyway (the user agent and X-Request-Id are stored),
    for a server that would pass one on. Called directly, as such a server would."""
    reached: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope)

    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/auth/me",
        "query_string": b"",
        "headers": [(b"host", b"x"), (b"x-request-id", b"evil\x00id")],
    }
    asyncio.run(StorableText(app)(scope, receive, send))
    assert not reached and sent[0]["status"] == 400
    error = json.loads(sent[1]["body"])["error"]
    assert error["code"] == "unstorable_text"
    assert error["details"][0]["loc"] == ["header", "x-request-id"]


# --- numbers ---------------------------------------------------------------------------

BEYOND_BIGINT = str(2**63)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/instances", {"offset": BEYOND_BIGINT}),
        ("/instances", {"limit": BEYOND_BIGINT}),
        ("/action_logs", {"limit": BEYOND_BIGINT}),
        ("/action_logs/search", {"offset": BEYOND_BIGINT}),
        ("/action_logs/search", {"offset": "1000001"}),
        ("/audit_logs", {"offset": BEYOND_BIGINT}),
        ("/audit_logs/platform", {"offset": BEYOND_BIGINT}),
        ("/users", {"offset": BEYOND_BIGINT}),
        ("/users", {"offset": "-1"}),
    ],
)
def test_every_page_is_bounded(world: World, path: str, params: dict) -> None:
    refused(world["owner"].get(path, params=params), 422, "validation_error")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/models",
            b'{"name": "n", "model_id": "h/1", "required_vram_gb": 1180591620717411303424}',
        ),
        ("/models", b'{"name": "n", "model_id": "h/2", "price_per_1k_input_tokens_eur": NaN}'),
        (
            "/models",
            b'{"name": "n", "model_id": "h/3", "price_per_1k_output_tokens_eur": Infinity}',
        ),
        ("/models", b'{"name": "n", "model_id": "h/4", "price_per_1k_input_tokens_eur": 1e400}'),
        ("/models", b'{"name": "n", "model_id": "h/5", "price_per_1k_input_tokens_eur": "1e9999"}'),
        ("/models", b'{"name": "n", "model_id": "h/6", "context_length": -Infinity}'),
        ("/api_keys", b'{"name": "n", "requests_per_minute": 18446744073709551616}'),
        ("/api_keys", b'{"name": "n", "tokens_per_minute": NaN}'),
        ("/organizations/current/invitations", b'{"email": "a@b.test", "expires_in_hours": 1e30}'),
    ],
)
def test_numbers_a_column_cannot_hold_are_refused(world: World, path: str, body: bytes) -> None:
    refused(world["owner"].post(path, content=body, headers=JSON), 422, "validation_error")


@pytest.mark.parametrize(
    "body",
    [
        b'{"monthly_budget_eur": NaN}',
        b'{"monthly_budget_eur": Infinity}',
        b'{"monthly_budget_eur": 10, "alert_thresholds": [1180591620717411303424]}',
    ],
)
def test_a_budget_of_no_number_is_refused(world: World, body: bytes) -> None:
    refused(world["owner"].put("/finops/budget", content=body, headers=JSON), 422)


def test_an_integer_too_long_to_read_is_a_bad_request(world: World) -> None:
    body = b'{"name": "n", "requests_per_minute": ' + b"9" * 5000 + b"}"
    refused(world["owner"].post("/api_keys", content=body, headers=JSON), 400)


# --- moments ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/action_logs", "/action_logs/search", "/audit_logs"])
@pytest.mark.parametrize(
    "params",
    [
        {"until": "0.5"},
        {"since": "1700000000"},
        {"since": "1e3"},
        {"since": "0001-01-01T00:00:00+14:00"},  # before the epoch, and overflows in UTC
        {"until": "9999-12-31T23:59:59-14:00"},
    ],
)
def test_log_moments_are_iso_8601_in_range(world: World, path: str, params: dict) -> None:
    refused(world["owner"].get(path, params=params), 422, "validation_error")


@pytest.mark.parametrize("path", ["/action_logs", "/action_logs/search", "/audit_logs"])
def test_log_moments_with_and_without_a_zone_mix(world: World, path: str) -> None:
    params = {"since": "2020-01-01T00:00:00", "until": "2030-01-01T00:00:00+02:00"}
    assert world["owner"].get(path, params=params).status_code == 200


@pytest.mark.parametrize(
    "expires_at", [1e10, 1700000000, "9999-12-31T23:59:59-14:00", "2999-01-01T00:00:00"]
)
def test_an_api_key_expiry_is_a_moment(world: World, expires_at: object) -> None:
    response = world["owner"].post("/api_keys", json={"name": "n", "expires_at": expires_at})
    if expires_at == "2999-01-01T00:00:00":  # no zone: UTC, and in the future
        assert response.status_code == 201, response.text
        assert response.json()["expires_at"].startswith("2999-01-01T00:00:00")
    else:
        refused(response, 422)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/finops/cost/actual/minute", {"to": "0001-01-01T00:00:00"}),
        ("/finops/cost/actual/minute", {"to": "9999-12-31T23:59:59"}),
        ("/finops/dashboard/costs/summary", {"from": "0001-01-01T00:00:00"}),
        ("/finops/token_cost", {"to": "9999-12-31T23:59:59+00:00"}),
        ("/finops/usage", {"from": "x" * 10_000}),
        ("/finops/dashboard/costs/window", {"window": "x" * 10_000}),
    ],
)
def test_finops_ranges_out_of_reach_are_bad_ranges(world: World, path: str, params: dict) -> None:
    refused(world["owner"].get(path, params=params), 400)


# --- booleans --------------------------------------------------------------------------


def test_switches_take_booleans_only(world: World) -> None:
    owner = world["owner"]
    zone = owner.get("/zones").json()[0]
    cases = [
        (f"/models/{world.model_a}/activation/technical", {"active": 0}),
        (f"/models/{world.model_a}/activation/economic", {"active": "true"}),
        (f"/instances/{world.instance_a}/activation/technical", {"active": 1}),
        (f"/instances/{world.instance_a}/activation/economic", {"active": "no"}),
        (f"/instances/{world.instance_a}/volumes/{uuid.uuid4()}", {"delete_on_terminate": 0}),
        (f"/models/{world.model_a}", {"is_active": "yes"}),
        (f"/users/{world.users['user']}", {"is_active": 0}),
        ("/zones", [{"id": zone["id"], "is_active": 1}]),
        ("/finops/budget", {"monthly_budget_eur": 10, "hard_cap": 1}),
    ]
    for path, body in cases:
        refused(owner.put(path, json=body), 422, "validation_error")
    assert owner.get(f"/models/{world.model_a}").json()["is_active"] is True


# --- emails and names ------------------------------------------------------------------


@pytest.mark.parametrize(
    "email",
    [
        "a\x01b@example.test",
        "admin\n@inventiv.local",
        "ad\x1bmin@inventiv.local",
        "a\u202eb@example.test",
        "a b@example.test",
        "two@@example.test",
        "dots@example..test",
        "not-an-email",
    ],
)
def test_an_email_must_be_one(world: World, email: str) -> None:
    username = f"mail-{uuid.uuid4().hex[:8]}"
    create_user(world["owner"], username)
    client = world.api.login(username)
    refused(client.put("/auth/me", json={"email": email}), 422, "validation_error")
    assert client.get("/auth/me").json()["email"] == f"{username}@example.test"
    created = world["owner"].post(
        "/users", json={"username": username + "x", "email": email, "password": "p" * 12}
    )
    refused(created, 422)
    invited = world["owner"].post("/organizations/current/invitations", json={"email": email})
    refused(invited, 422)


@pytest.mark.parametrize("domain", ["host", "inventiv.local", "corp.internal", "office.lan"])
def test_internal_domains_are_emails(world: World, domain: str) -> None:
    username = f"mail-{uuid.uuid4().hex[:8]}"
    created = world["owner"].post(
        "/users",
        json={"username": username, "email": f"{username}@{domain.upper()}", "password": "p" * 12},
    )
    assert created.status_code == 201, created.text
    assert created.json()["email"] == f"{username}@{domain}"  # one mailbox, one spelling


@pytest.mark.parametrize(
    "bad",
    [
        *("\x07", "\t", "\n", "\x7f", "\x85", "\u2028"),
        *("\u061c", "\u200e", "\u200f", "\u202a", "\u202e", "\u2066", "\u2069"),
    ],
)
def test_names_refuse_control_and_bidi_override_characters(world: World, bad: str) -> None:
    owner = world["owner"]
    name = f"invoice{bad}fdp.exe"
    zone = owner.get("/zones").json()[0]
    cases = [
        owner.post("/organizations", json={"name": name}),
        owner.post("/api_keys", json={"name": name}),
        owner.post("/models", json={"name": name, "model_id": f"n/{uuid.uuid4().hex[:8]}"}),
        owner.put(f"/models/{world.model_a}", json={"name": name}),
        owner.put("/auth/me", json={"first_name": name}),
        owner.put("/auth/me", json={"last_name": name}),
        owner.put(f"/users/{world.users['user']}", json={"first_name": name}),
        owner.put("/zones", json=[{"id": zone["id"], "name": name}]),
    ]
    for response in cases:
        refused(response, 422, "validation_error")
    assert owner.get("/zones").json()[0]["name"] == zone["name"]


# --- what errors quote back ------------------------------------------------------------


def test_errors_never_echo_long_input(world: World) -> None:
    owner = world["owner"]
    long = "k" * 100_000
    refused(owner.post("/api_keys", json={"name": "x", long: 1}), 422)
    refused(owner.post("/api_keys", json={"name": long}), 422)
    refused(owner.post("/api_keys", json={"name": "x", "allowed_models": [long]}), 422)
    unknown = owner.post(
        "/api_keys",
        json={"name": "x", "allowed_models": [f"{i:03d}" + "m" * 297 for i in range(100)]},
    )
    refused(unknown, 422, "unknown_models")
    refused(owner.put("/provider_settings/scaleway", json={"values": {long: "v"}}), 422)
    refused(owner.post("/users", json={"username": long, "email": long, "password": long}), 422)
    # Thousands of mistakes: the first ones are listed, and how many more there are.
    many = refused(owner.put("/providers", json=[{"name": 1}] * 5000), 422)
    assert len(many["details"]) <= 21 and "more" in many["details"][-1]["msg"]


# --- models ----------------------------------------------------------------------------


def test_a_private_model_cannot_take_a_public_models_id(world: World) -> None:
    public = [m for m in world["owner"].get("/models").json() if m["organization_id"] is None]
    assert public, "the catalog seed holds public models"
    for client in (world["owner"], world["other_owner"]):
        taken = client.post("/models", json={"name": "Shadow", "model_id": public[0]["model_id"]})
        refused(taken, 409, "public_model_exists")
        # In another case too: an id that reads the same would mislead whoever picks one.
        shouted = {"name": "Shadow", "model_id": public[0]["model_id"].upper()}
        refused(client.post("/models", json=shouted), 409, "public_model_exists")
        ids = [m["model_id"] for m in client.get("/models").json()]
        assert ids.count(public[0]["model_id"]) == 1


def test_one_private_model_id_at_once_is_one_model(world: World) -> None:
    model_id = f"race/{uuid.uuid4().hex[:8]}"
    clients = [world.fresh_session("owner") for _ in range(8)]
    start = threading.Barrier(len(clients))
    statuses: list[int] = []

    def create(client: httpx.Client) -> None:
        start.wait()
        statuses.append(
            client.post("/models", json={"name": "R", "model_id": model_id}).status_code
        )

    threads = [threading.Thread(target=create, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for client in clients:
        client.close()
    # The losers of the race past the check meet the unique index: a 409, never a 500.
    assert sorted(statuses) == [201] + [409] * 7, statuses


# --- bodies that are not JSON ----------------------------------------------------------


@pytest.mark.parametrize(
    ("actor", "method", "path", "body"),
    [
        ("owner", "POST", "/api_keys", b"{not json"),
        ("owner", "POST", "/organizations", b'{"name": "a"'),
        ("owner", "PUT", "/organizations/current", b"nope"),
        ("owner", "PUT", "/finops/budget", b"{'single': 'quotes'}"),
        ("anonymous", "POST", "/auth/login", b'{"username": "admin", "password": }'),
    ],
)
def test_a_body_that_is_not_json_is_a_bad_request(
    world: World, actor: str, method: str, path: str, body: bytes
) -> None:
    client = world.api.client() if actor == "anonymous" else world[actor]
    response = client.request(method, path, content=body, headers=JSON)
    refused(response, 400, "invalid_json")
