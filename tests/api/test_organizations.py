"""Workspaces, members, invitations (including escalation attempts), last-owner rules."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx

from tests.api.conftest import World, create_user


def _person(world: World) -> tuple[str, httpx.Client]:
    username = f"org-{uuid.uuid4().hex[:8]}"
    create_user(world["owner"], username)
    return username, world.api.login(username)


def _own_org(client: httpx.Client) -> str:
    created = client.post("/organizations", json={"name": f"Org {uuid.uuid4().hex[:6]}"})
    assert created.status_code == 201, created.text
    org_id = created.json()["id"]
    assert client.put("/organizations/current", json={"organization_id": org_id}).status_code == 204
    return str(org_id)


def _invite(client: httpx.Client, username: str, role: str) -> httpx.Response:
    return client.post(
        "/organizations/current/invitations",
        json={"email": f"{username}@example.test", "role": role},
    )


def test_workspace_switching(world: World) -> None:
    _, client = _person(world)
    assert client.get("/auth/me").json()["current_organization_id"] is None  # Personal
    org_id = _own_org(client)
    me = client.get("/auth/me").json()
    assert (me["current_organization_id"], me["current_organization_role"]) == (org_id, "owner")
    orgs = client.get("/organizations").json()
    assert [(o["id"], o["role"], o["is_current"]) for o in orgs] == [(org_id, "owner", True)]
    assert client.put("/organizations/current", json={"organization_id": None}).status_code == 204
    assert client.get("/auth/me").json()["current_organization_id"] is None
    # Someone else's organization cannot be selected, nor confirmed to exist.
    foreign = client.put("/organizations/current", json={"organization_id": str(world.org_a)})
    assert foreign.status_code == 404
    duplicate = client.post("/organizations", json={"name": "x", "slug": "inventiv-it"})
    assert duplicate.status_code == 409


def test_invitation_roles_cannot_exceed_the_inviter(world: World) -> None:
    assert _invite(world["manager"], "nobody1", "admin").status_code == 403
    assert _invite(world["manager"], "nobody2", "owner").status_code == 403
    assert _invite(world["admin"], "nobody3", "owner").status_code == 403
    assert _invite(world["user"], "nobody4", "user").status_code == 403
    assert _invite(world["manager"], "nobody5", "manager").status_code == 201
    assert _invite(world["admin"], "nobody6", "admin").status_code == 201


def test_invitation_is_shown_once_and_accepted_by_the_invited_email_only(world: World) -> None:
    username, invitee = _person(world)
    _, stranger = _person(world)
    created = _invite(world["admin"], username, "manager")
    assert created.status_code == 201
    token = created.json()["token"]
    listed = world["admin"].get("/organizations/current/invitations").json()
    assert all("token" not in entry for entry in listed)
    assert token not in str(listed)

    assert stranger.post(f"/organizations/invitations/{token}/accept").status_code == 403
    assert world.api.client().post(f"/organizations/invitations/{token}/accept").status_code == 401
    accepted = invitee.post(f"/organizations/invitations/{token}/accept")
    assert accepted.status_code == 200
    me = invitee.get("/auth/me").json()
    assert (me["current_organization_id"], me["current_organization_role"]) == (
        str(world.org_a),
        "manager",
    )
    again = invitee.post(f"/organizations/invitations/{token}/accept")
    assert (again.status_code, again.json()["error"]["code"]) == (410, "invitation_used")
    assert invitee.post("/organizations/invitations/inv_unknown/accept").status_code == 404
    assert _invite(world["admin"], username, "user").status_code == 409  # already a member


def test_revoked_and_expired_invitations_are_refused(world: World, database_url: str) -> None:
    username, invitee = _person(world)
    revoked = _invite(world["owner"], username, "user").json()
    assert (
        world["owner"].delete(f"/organizations/current/invitations/{revoked['id']}").status_code
        == 204
    )
    response = invitee.post(f"/organizations/invitations/{revoked['token']}/accept")
    assert (response.status_code, response.json()["error"]["code"]) == (410, "invitation_revoked")

    expired = _invite(world["owner"], username, "user").json()

    async def expire() -> None:
        conn = await asyncpg.connect(database_url)
        await conn.execute(
            "UPDATE organization_invitations SET expires_at = now() - interval '1 minute' "
            "WHERE id = $1",
            uuid.UUID(expired["id"]),
        )
        await conn.close()

    asyncio.run(expire())
    response = invitee.post(f"/organizations/invitations/{expired['token']}/accept")
    assert (response.status_code, response.json()["error"]["code"]) == (410, "invitation_expired")
    # Another organization cannot revoke A's invitations, nor learn they exist.
    other = world["other_owner"].delete(f"/organizations/current/invitations/{expired['id']}")
    assert other.status_code == 404


def test_last_owner_can_neither_leave_nor_be_demoted_or_removed(world: World) -> None:
    _, owner = _person(world)
    _own_org(owner)
    me = owner.get("/auth/me").json()["id"]
    assert owner.post("/organizations/current/leave").status_code == 409
    assert (
        owner.put(f"/organizations/current/members/{me}", json={"role": "admin"}).status_code == 409
    )
    assert owner.delete(f"/organizations/current/members/{me}").status_code == 409

    # With a second owner, the first may step down.
    second_name, second = _person(world)
    token = _invite(owner, second_name, "owner").json()["token"]
    assert second.post(f"/organizations/invitations/{token}/accept").status_code == 200
    assert (
        owner.put(f"/organizations/current/members/{me}", json={"role": "admin"}).status_code == 204
    )
    second_id = second.get("/auth/me").json()["id"]
    # Now an admin, the first cannot touch the remaining owner.
    assert (
        owner.put(f"/organizations/current/members/{second_id}", json={"role": "user"}).status_code
        == 403
    )
    assert owner.delete(f"/organizations/current/members/{second_id}").status_code == 403
    assert second.post("/organizations/current/leave").status_code == 409


def test_members_and_leaving(world: World) -> None:
    name, person = _person(world)
    token = _invite(world["owner"], name, "user").json()["token"]
    assert person.post(f"/organizations/invitations/{token}/accept").status_code == 200
    members = {
        m["username"]: m["role"] for m in world["user"].get("/organizations/current/members").json()
    }
    assert members[name] == "user" and members["admin"] == "owner"
    person_id = person.get("/auth/me").json()["id"]
    # An admin promotes up to admin, not to owner; a manager cannot manage members.
    assert (
        world["admin"]
        .put(f"/organizations/current/members/{person_id}", json={"role": "owner"})
        .status_code
        == 403
    )
    assert (
        world["manager"]
        .put(f"/organizations/current/members/{person_id}", json={"role": "user"})
        .status_code
        == 403
    )
    assert (
        world["admin"]
        .put(f"/organizations/current/members/{person_id}", json={"role": "manager"})
        .status_code
        == 204
    )
    assert person.get("/auth/me").json()["current_organization_role"] == "manager"
    assert person.post("/organizations/current/leave").status_code == 204
    me = person.get("/auth/me").json()
    assert me["current_organization_id"] is None
    assert person.get("/instances").status_code == 403  # no workspace, no data
    assert world["owner"].delete(f"/organizations/current/members/{person_id}").status_code == 404
