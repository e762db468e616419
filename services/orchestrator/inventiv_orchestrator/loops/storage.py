"""Storage: each provider's volumes reconciled with `instance_volumes`.

- A volume attached to the server of a live instance and not yet tracked (made after
  the server, or by the provider on its own) is tracked and logged as discovered.
- A detached volume that no live instance owns is deleted, unless it is tracked as
  one to keep (`delete_on_terminate` false): an instance's volumes are deleted by the
  terminator, so these are what a crash or a half-done termination left behind.
- A tracked volume the provider no longer lists is marked gone.

Rows are changed with guarded statements (`deleted_at IS NULL`), so a terminator
finishing the same volume at the same moment is never overwritten.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from inventiv_common import actions
from inventiv_common.actions import log_action
from inventiv_common.db.models import Instance, InstanceVolume, Provider
from inventiv_common.lifecycle import LIVE_STATES
from inventiv_common.providers.base import CloudProvider, ProviderError, ProviderVolume
from inventiv_orchestrator.context import Context
from inventiv_orchestrator.loops.base import Loop

LIVE = [s.value for s in LIVE_STATES]
BOOT_SUFFIX = "-boot"
INSTANCE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
log = logging.getLogger(__name__)


class StorageLoop(Loop):
    name = "storage"

    def __init__(self, ctx: Context, interval_s: float) -> None:
        super().__init__(interval_s)
        self.ctx = ctx

    async def run_once(self) -> int:
        # Every account of a provider is listed before its volumes are reconciled: the
        # rows of `instance_volumes` are per provider, and a volume missing from one
        # account's listing may well be in another's.
        listed: dict[str, list[tuple[CloudProvider, ProviderVolume]]] = {}
        partial: set[str] = set()
        for code, provider in await self.ctx.every_account():
            try:
                volumes = await provider.list_volumes()
            except ProviderError as exc:
                # One account refused or away: the others are still looked after.
                log.warning("volumes not listed", extra={"provider": code, "error": str(exc)})
                partial.add(code)
                continue
            listed.setdefault(code, []).extend((provider, v) for v in volumes)
        acted = 0
        for code, owned in listed.items():
            async with self.ctx.session_factory() as session:
                provider_id = await session.scalar(select(Provider.id).where(Provider.code == code))
                if provider_id is None:
                    continue
                acted += await self._reconcile(
                    session, code, provider_id, owned, complete=code not in partial
                )
                await session.commit()
        return acted

    async def _reconcile(
        self,
        session: AsyncSession,
        code: str,
        provider_id: uuid.UUID,
        owned: list[tuple[CloudProvider, ProviderVolume]],
        *,
        complete: bool,
    ) -> int:
        """`owned`: each volume with the account that listed it (which deletes it);
        `complete`: every account answered, so a tracked volume not listed is gone."""
        volumes = [volume for _, volume in owned]
        account = {volume.provider_id: provider for provider, volume in owned}
        tracked = {
            row.provider_volume_id: row
            for row in await session.execute(
                select(
                    InstanceVolume.id,
                    InstanceVolume.provider_volume_id,
                    InstanceVolume.instance_id,
                    InstanceVolume.delete_on_terminate,
                    Instance.organization_id,
                )
                .outerjoin(Instance, Instance.id == InstanceVolume.instance_id)
                .where(
                    InstanceVolume.provider_id == provider_id, InstanceVolume.deleted_at.is_(None)
                )
            )
        }
        server_ids = {v.server_id for v in volumes if v.server_id}
        by_server = {
            row.provider_instance_id: row
            for row in await session.execute(
                select(Instance.id, Instance.organization_id, Instance.provider_instance_id).where(
                    Instance.provider_instance_id.in_(server_ids), Instance.status.in_(LIVE)
                )
            )
        }
        # Detached volumes whose instance is still live (coming up, or its volume moved).
        claimed = {_owner(v.name) for v in volumes if not v.server_id} | {
            row.instance_id for row in tracked.values()
        }
        live = set(
            (
                await session.scalars(
                    select(Instance.id).where(
                        Instance.id.in_([i for i in claimed if i is not None]),
                        Instance.status.in_(LIVE),
                    )
                )
            ).all()
        )
        acted = 0
        now = datetime.now(UTC)
        for volume in volumes:
            row = tracked.get(volume.provider_id)
            if volume.server_id:
                owner = by_server.get(volume.server_id)
                if owner is not None and row is None:
                    acted += await self._discovered(session, provider_id, owner, volume)
                continue
            if row is not None and not row.delete_on_terminate:
                continue  # kept on purpose
            if _owner(volume.name) in live or (row is not None and row.instance_id in live):
                continue
            try:
                await account[volume.provider_id].delete_volume(volume.provider_id)
            except ProviderError:
                continue  # next pass
            if row is not None:
                await session.execute(
                    update(InstanceVolume)
                    .where(InstanceVolume.id == row.id, InstanceVolume.deleted_at.is_(None))
                    .values(status="deleted", deleted_at=now)
                )
            log_action(
                session,
                None,
                actions.VOLUME_DELETED,
                component="orchestrator",
                details={"provider": code, "volume": volume.provider_id, "orphan": True},
                instance_id=row.instance_id if row is not None else None,
                organization_id=row.organization_id if row is not None else None,
            )
            acted += 1
        listed = {v.provider_id for v in volumes}
        unlisted = [row for pvid, row in tracked.items() if pvid not in listed] if complete else []
        for gone in unlisted:
            marked = await session.scalar(
                update(InstanceVolume)
                .where(InstanceVolume.id == gone.id, InstanceVolume.deleted_at.is_(None))
                .values(status="gone", deleted_at=now)
                .returning(InstanceVolume.id)
            )
            if marked is not None:
                log_action(
                    session,
                    None,
                    actions.VOLUME_GONE,
                    component="orchestrator",
                    details={"provider": code, "volume": gone.provider_volume_id},
                    instance_id=gone.instance_id,
                    organization_id=gone.organization_id,
                )
                acted += 1
        return acted

    @staticmethod
    async def _discovered(
        session: AsyncSession, provider_id: uuid.UUID, owner: Any, volume: ProviderVolume
    ) -> int:
        inserted = await session.scalar(
            pg_insert(InstanceVolume)
            .values(
                id=uuid.uuid4(),
                instance_id=owner.id,
                provider_id=provider_id,
                zone_code=volume.zone,
                provider_volume_id=volume.provider_id,
                name=volume.name,
                volume_type=volume.volume_type,
                size_gb=volume.size_gb,
                is_boot=volume.name.endswith(BOOT_SUFFIX),
            )
            # Provisioning may be tracking the same volume right now.
            .on_conflict_do_nothing(constraint="uq_instance_volumes_provider_volume")
            .returning(InstanceVolume.id)
        )
        if inserted is None:
            return 0
        log_action(
            session,
            None,
            actions.VOLUME_DISCOVERED,
            component="orchestrator",
            details={"volume": volume.provider_id, "name": volume.name, "size_gb": volume.size_gb},
            instance_id=owner.id,
            organization_id=owner.organization_id,
        )
        return 1


def _owner(volume_name: str) -> uuid.UUID | None:
    """The instance a volume was made for, from the instance id its name carries (the
    Mock's `<id>-boot`, Scaleway's `inventiv-<id>-boot` and `inventiv-<id>-data`): a
    detached volume of an instance still coming up is not an orphan."""
    found = INSTANCE_ID.search(volume_name)
    return uuid.UUID(found.group(0)) if found else None
