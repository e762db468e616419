"""/organizations: workspaces, members and invitations."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from inventiv_api.audit import service as audit
from inventiv_api.deps import SessionDep, SettingsDep
from inventiv_api.organizations import service
from inventiv_api.organizations.schemas import (
    InvitationCreate,
    InvitationCreated,
    InvitationOut,
    MemberOut,
    MemberRoleUpdate,
    OrganizationCreate,
    OrganizationOut,
    WorkspaceSelect,
)
from inventiv_api.security.permissions import Permission as P
from inventiv_api.security.permissions import Role
from inventiv_api.security.principal import Principal, require
from inventiv_api.security.workspace import current_org_id

router = APIRouter(prefix="/organizations", tags=["organizations"])

Authenticated = Annotated[Principal, Depends(require(P.authenticated))]
MembersReader = Annotated[Principal, Depends(require(P.members_read))]
MembersManager = Annotated[Principal, Depends(require(P.members_manage))]
Member = Annotated[Principal, Depends(require(P.org_read))]
InvitationsReader = Annotated[Principal, Depends(require(P.invitations_read))]
Inviter = Annotated[Principal, Depends(require(P.invitations_create))]


@router.get("", response_model=list[OrganizationOut])
async def list_organizations(
    principal: Authenticated, session: SessionDep
) -> list[OrganizationOut]:
    rows = await service.memberships_of(session=session, user_id=principal.user_id)
    return [
        OrganizationOut(
            id=org.id,
            name=org.name,
            slug=org.slug,
            subscription_plan=org.subscription_plan,
            role=Role(role),
            is_current=org.id == principal.organization_id,
            created_at=org.created_at,
        )
        for org, role in rows
    ]


@router.post("", response_model=OrganizationOut, status_code=201)
async def create_organization(
    body: OrganizationCreate, principal: Authenticated, request: Request, session: SessionDep
) -> OrganizationOut:
    org = await service.create_organization(
        session=session, principal=principal, name=body.name, slug=body.slug
    )
    audit.record(
        session=session,
        request=request,
        action="organization.created",
        principal=principal,
        organization_id=org.id,
        resource_type="organization",
        resource_id=org.id,
    )
    await session.commit()
    return OrganizationOut(
        id=org.id,
        name=org.name,
        slug=org.slug,
        subscription_plan=org.subscription_plan,
        role=Role.owner,
        is_current=False,
        created_at=org.created_at,
    )


@router.put("/current", status_code=204)
async def select_workspace(
    body: WorkspaceSelect, principal: Authenticated, session: SessionDep
) -> Response:
    await service.select_workspace(
        session=session, principal=principal, organization_id=body.organization_id
    )
    await session.commit()
    return Response(status_code=204)


@router.get("/current/members", response_model=list[MemberOut])
async def list_members(principal: MembersReader, session: SessionDep) -> list[MemberOut]:
    rows = await service.list_members(session=session, org_id=current_org_id(principal))
    return [
        MemberOut(
            user_id=user.id,
            username=user.username,
            email=user.email,
            first_name=user.first_name,
            last_name=user.last_name,
            role=Role(role),
            joined_at=joined,
        )
        for user, role, joined in rows
    ]


@router.put("/current/members/{user_id}", status_code=204)
async def change_member_role(
    user_id: uuid.UUID,
    body: MemberRoleUpdate,
    principal: MembersManager,
    request: Request,
    session: SessionDep,
) -> Response:
    old, new = await service.change_member_role(
        session=session, principal=principal, user_id=user_id, role=body.role
    )
    audit.record(
        session=session,
        request=request,
        action="member.role_changed",
        principal=principal,
        resource_type="user",
        resource_id=user_id,
        details={"from": old.value, "to": new.value},
    )
    await session.commit()
    return Response(status_code=204)


@router.delete("/current/members/{user_id}", status_code=204)
async def remove_member(
    user_id: uuid.UUID, principal: MembersManager, request: Request, session: SessionDep
) -> Response:
    role = await service.remove_member(session=session, principal=principal, user_id=user_id)
    audit.record(
        session=session,
        request=request,
        action="member.removed",
        principal=principal,
        resource_type="user",
        resource_id=user_id,
        details={"role": role.value},
    )
    await session.commit()
    return Response(status_code=204)


@router.post("/current/leave", status_code=204)
async def leave(principal: Member, request: Request, session: SessionDep) -> Response:
    role = await service.remove_member(
        session=session, principal=principal, user_id=principal.user_id
    )
    audit.record(
        session=session,
        request=request,
        action="member.left",
        principal=principal,
        resource_type="user",
        resource_id=principal.user_id,
        details={"role": role.value},
    )
    await session.commit()
    return Response(status_code=204)


@router.get("/current/invitations", response_model=list[InvitationOut])
async def list_invitations(
    principal: InvitationsReader, session: SessionDep
) -> list[InvitationOut]:
    rows = await service.list_invitations(session=session, org_id=current_org_id(principal))
    return [InvitationOut.model_validate(row) for row in rows]


@router.post("/current/invitations", response_model=InvitationCreated, status_code=201)
async def create_invitation(
    body: InvitationCreate,
    principal: Inviter,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> InvitationCreated:
    invitation, token = await service.create_invitation(
        session=session,
        principal=principal,
        email=body.email,
        role=body.role,
        ttl_hours=body.expires_in_hours or settings.invitation_ttl_hours,
    )
    audit.record(
        session=session,
        request=request,
        action="invitation.created",
        principal=principal,
        resource_type="invitation",
        resource_id=invitation.id,
        details={"email": invitation.email, "role": invitation.role},
    )
    await session.commit()
    return InvitationCreated(
        **InvitationOut.model_validate(invitation).model_dump(),
        token=token,
        accept_path=f"/organizations/invitations/{token}/accept",
    )


@router.delete("/current/invitations/{invitation_id}", status_code=204)
async def revoke_invitation(
    invitation_id: uuid.UUID, principal: Inviter, request: Request, session: SessionDep
) -> Response:
    await service.revoke_invitation(
        session=session, principal=principal, invitation_id=invitation_id
    )
    audit.record(
        session=session,
        request=request,
        action="invitation.revoked",
        principal=principal,
        resource_type="invitation",
        resource_id=invitation_id,
    )
    await session.commit()
    return Response(status_code=204)


@router.post("/invitations/{token}/accept", response_model=InvitationOut)
async def accept_invitation(
    token: str, principal: Authenticated, request: Request, session: SessionDep
) -> InvitationOut:
    invitation = await service.accept_invitation(session=session, principal=principal, token=token)
    audit.record(
        session=session,
        request=request,
        action="invitation.accepted",
        principal=principal,
        organization_id=invitation.organization_id,
        resource_type="invitation",
        resource_id=invitation.id,
        details={"role": invitation.role},
    )
    await session.commit()
    return InvitationOut.model_validate(invitation)
