"""Whether Scaleway accepts an API key for the platform's work, and if not, why.

Three questions, cheapest first. Is each value in Scaleway's format (asked of nobody)?
May the key read the project's servers? May it change them? Deployments create and
delete servers, so a key that may only read is refused here rather than at the first
deployment. The last question deletes a server that cannot exist: a key that may write
gets "not found", one that may not gets "permission denied", and nothing changes either
way.

Reasons name the field or Scaleway's answer, never a value: the SDK's own format
errors quote the secret key, so they are not used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from scaleway_core.validations.string_validation import (
    is_access_key,
    is_organization_id,
    is_project_id,
    is_secret_key,
    is_zone,
)

from inventiv_common.providers.base import ProviderError
from inventiv_common.providers.scaleway.errors import (
    INVALID_CREDENTIALS,
    NOT_FOUND,
    PERMISSION_DENIED,
)

if TYPE_CHECKING:
    from inventiv_common.providers.scaleway.provider import ScalewayProvider

MALFORMED = "credentials_malformed"
# Scaleway gives servers random (version 4) UUIDs: the nil UUID is never one of them.
NO_SUCH_SERVER = "00000000-0000-0000-0000-000000000000"

FORMATS: dict[str, tuple[Callable[[str], bool], str]] = {
    "access_key": (is_access_key, "SCW followed by 17 letters or digits"),
    "secret_key": (is_secret_key, "a UUID"),
    "project_id": (is_project_id, "a UUID"),
    "organization_id": (is_organization_id, "a UUID"),
    "default_zone": (is_zone, "a zone such as fr-par-2"),
}


def malformed(values: Mapping[str, str]) -> str | None:
    """Why these values cannot be Scaleway credentials, or None."""
    for field, (valid, shape) in FORMATS.items():
        value = values.get(field)
        if value is not None and not valid(value):
            return f"the {field} is not in Scaleway's format (expected {shape})"
    return None


async def refusal(provider: ScalewayProvider) -> ProviderError | None:
    """None when Scaleway accepts the provider's key for reading and changing servers
    in its project; the refusal (a final ProviderError) otherwise. Raises a retryable
    ProviderError when Scaleway cannot be asked: the caller says so rather than guess."""
    config = provider.config
    problem = malformed(
        {
            "access_key": config.access_key,
            "secret_key": config.secret_key,
            "project_id": config.project_id,
        }
    )
    if problem is not None:
        return ProviderError(problem, retryable=False, code=MALFORMED)
    zone = config.zones[0]
    try:
        await provider.calls(
            "reading the project's servers",
            provider.instance.list_servers,
            zone=zone,
            project=config.project_id,
            per_page=1,
        )
    except ProviderError as exc:
        if exc.code in (INVALID_CREDENTIALS, PERMISSION_DENIED):
            return exc
        raise
    try:
        await provider.calls(
            "checking that the key may delete servers",
            provider.instance.delete_server,
            zone=zone,
            server_id=NO_SUCH_SERVER,
        )
    except ProviderError as exc:
        if exc.code == NOT_FOUND:
            return None  # allowed to delete, and there was nothing to delete
        if exc.code in (INVALID_CREDENTIALS, PERMISSION_DENIED):
            return exc
        raise
    return None
