"""Organizations, memberships and invitations. Nothing commits; errors are ApiErrors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_api.errors import ApiError, conflict, forbidden, not_found
from inventiv_api.identity.bootstrap import slugify
from inventiv_api.security.permissions import ROLE_RANK, Role, outranks_or_equals
from inventiv_api.security.principal import Principal
from inventiv_api.security.secrets import new_token, token_hash
from inventiv_api.security.workspace import current_org_id
from inventiv_common.db.models import (
    Organization,
    OrganizationInvitation,
    OrganizationMembership,
    User,
    UserSession,
)


async def memberships_of(
    *, session: AsyncSession, user_id: uuid.UUID
) -> list[tuple[Organization, str]]:
    rows = await session.execute(
        select(Organization, OrganizationMembership.role)
        .join(OrganizationMembership, OrganizationMembership.organization_id == Organization.id)
        .where(OrganizationMembership.user_id == user_id)
        .order_by(Organization.name)
    )
    return [(org, role) for org, role in rows.tuples()]


async def create_organization(
    *, session: AsyncSession, principal: Principal, name: str, slug: str | None
) -> Organization:
    slug = slug or slugify(name)
    if await session.scalar(select(Organization.id).where(Organization.slug == slug)):
        raise conflict("slug_taken", f"the slug {slug!r} is already taken")
    org = Organization(name=name, slug=slug, created_by_user_id=principal.user_id)
    session.add(org)
    await session.flush()
    session.add(
        OrganizationMembership(organization_id=org.id, user_id=principal.user_id, role="owner")
    )
    await session.flush()
    return org


async def select_workspace(
    *, session: AsyncSession, principal: Principal, organization_id: uuid.UUID | None
) -> None:
    if principal.session_id is None:
        raise ApiError(
            400, "session_required", "API keys are bound to one organization; use a session"
        )
    if organization_id is not None:
        member = await _membership(session, organization_id, principal.user_id)
        if member is None:
            raise not_found("organization")
    user_session = await session.get_one(UserSession, principal.session_id)
    user_session.current_organization_id = organization_id
    await session.flush()


async def _membership(
    session: AsyncSession, org_id: uuid.UUID, user_id: uuid.UUID
) -> OrganizationMembership | None:
    return await session.get(OrganizationMembership, (org_id, user_id))


async def list_members(
    *, session: AsyncSession, org_id: uuid.UUID
) -> list[tuple[User, str, datetime]]:
    rows = await session.execute(
        select(User, OrganizationMembership.role, OrganizationMembership.created_at)
        .join(OrganizationMembership, OrganizationMembership.user_id == User.id)
        .where(OrganizationMembership.organization_id == org_id)
        .order_by(User.username)
    )
    return [(u, r, t) for u, r, t in rows.tuples()]


async def _owner_count(session: AsyncSession, org_id: uuid.UUID) -> int:
    # Locks the owners' rows so two concurrent demotions cannot both see "another owner".
    owners = await session.scalars(
        select(OrganizationMembership.user_id)
        .where(
            OrganizationMembership.organization_id == org_id,
            OrganizationMembership.role == Role.owner.value,
        )
        .with_for_update()
    )
    return len(list(owners))


async def change_member_role(
    *, session: AsyncSession, principal: Principal, user_id: uuid.UUID, role: Role
) -> tuple[Role, Role]:
    org_id = current_org_id(principal)
    member = await _membership(session, org_id, user_id)
    if member is None:
        raise not_found("member")
    actor = principal.role
    assert actor is not None
    old = Role(member.role)
    # Nobody changes someone above them, nor grants a role above their own.
    if not outranks_or_equals(actor, old) or not outranks_or_equals(actor, role):
        raise forbidden("you cannot change a member above your role, nor grant a role above it")
    if old is Role.owner and role is not Role.owner and await _owner_count(session, org_id) <= 1:
        raise conflict("last_owner", "the last owner cannot be demoted")
    member.role = role.value
    await session.flush()
    return old, role


async def remove_member(*, session: AsyncSession, principal: Principal, user_id: uuid.UUID) -> Role:
    org_id = current_org_id(principal)
    member = await _membership(session, org_id, user_id)
    if member is None:
        raise not_found("member")
    role = Role(member.role)
    assert principal.role is not None
    if user_id != principal.user_id and not outranks_or_equals(principal.role, role):
        raise forbidden("you cannot remove a member above your role")
    if role is Role.owner and await _owner_count(session, org_id) <= 1:
        raise conflict("last_owner", "the last owner cannot be removed or leave")
    await session.delete(member)
    await _leave_workspace(session, org_id, user_id)
    await session.flush()
    return role


async def _leave_workspace(session: AsyncSession, org_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Sessions sitting in an organization the user left fall back to Personal."""
    await session.execute(
        update(UserSession)
        .where(UserSession.user_id == user_id, UserSession.current_organization_id == org_id)
        .values(current_organization_id=None)
    )


# --- invitations ---------------------------------------------------------------------


async def create_invitation(
    *,
    session: AsyncSession,
    principal: Principal,
    email: str,
    role: Role,
    ttl_hours: int,
) -> tuple[OrganizationInvitation, str]:
    org_id = current_org_id(principal)
    assert principal.role is not None
    if ROLE_RANK[role] > ROLE_RANK[principal.role]:
        raise forbidden("you cannot invite to a role above your own")
    already = await session.scalar(
        select(User.id)
        .join(OrganizationMembership, OrganizationMembership.user_id == User.id)
        .where(
            OrganizationMembership.organization_id == org_id,
            func.lower(User.email) == email.lower(),
        )
    )
    if already is not None:
        raise conflict("already_member", "that person is already a member")
    token = new_token("inv_")
    invitation = OrganizationInvitation(
        organization_id=org_id,
        email=email,
        role=role.value,
        token_hash=token_hash(token),
        invited_by_user_id=principal.user_id,
        expires_at=datetime.now(UTC) + timedelta(hours=ttl_hours),
    )
    session.add(invitation)
    await session.flush()
    return invitation, token


async def list_invitations(
    *, session: AsyncSession, org_id: uuid.UUID
) -> list[OrganizationInvitation]:
    rows = await session.scalars(
        select(OrganizationInvitation)
        .where(OrganizationInvitation.organization_id == org_id)
        .order_by(OrganizationInvitation.created_at.desc())
    )
    return list(rows)


async def revoke_invitation(
    *, session: AsyncSession, principal: Principal, invitation_id: uuid.UUID
) -> OrganizationInvitation:
    org_id = current_org_id(principal)
    invitation = await session.get(OrganizationInvitation, invitation_id)
    if invitation is None or invitation.organization_id != org_id:
        raise not_found("invitation")
    if invitation.accepted_at is not None:
        raise conflict("invitation_used", "the invitation was already accepted")
    if invitation.revoked_at is None:
        invitation.revoked_at = datetime.now(UTC)
        await session.flush()
    return invitation


async def accept_invitation(
    *, session: AsyncSession, principal: Principal, token: str
) -> OrganizationInvitation:
    invitation = await session.scalar(
        select(OrganizationInvitation)
        .where(OrganizationInvitation.token_hash == token_hash(token))
        .with_for_update()
    )
    if invitation is None:
        raise not_found("invitation")
    if invitation.revoked_at is not None:
        raise ApiError(410, "invitation_revoked", "this invitation was revoked")
    if invitation.accepted_at is not None:
        raise ApiError(410, "invitation_used", "this invitation was already used")
    if invitation.expires_at <= datetime.now(UTC):
        raise ApiError(410, "invitation_expired", "this invitation has expired")
    if invitation.email.lower() != principal.email.lower():
        raise forbidden("this invitation was sent to another email address")
    if await _membership(session, invitation.organization_id, principal.user_id) is not None:
        raise conflict("already_member", "you are already a member of this organization")
    session.add(
        OrganizationMembership(
            organization_id=invitation.organization_id,
            user_id=principal.user_id,
            role=invitation.role,
        )
    )
    invitation.accepted_at = datetime.now(UTC)
    invitation.accepted_by_user_id = principal.user_id
    if principal.session_id is not None:
        user_session = await session.get_one(UserSession, principal.session_id)
        user_session.current_organization_id = invitation.organization_id
    await session.flush()
    return invitation
