"""The caller's workspace: the organization every tenant-owned read and write is scoped to.

A session picks its workspace with `PUT /organizations/current` (`null` for Personal);
an API key acts in its organization. Routes about an organization's resources need one:
in Personal they answer 403 `organization_required`.
"""

from __future__ import annotations

import uuid

from inventiv_api.errors import ApiError
from inventiv_api.security.principal import Principal


def current_org_id(principal: Principal) -> uuid.UUID:
    """The caller's organization, or 403 when the caller is in their Personal workspace."""
    if principal.organization_id is None:
        raise ApiError(403, "organization_required", "select an organization workspace first")
    return principal.organization_id
