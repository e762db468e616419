"""The catalog seed: idempotent, and carrying the catalog the platform needs."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from inventiv_common.db.seed import apply_sql_file, default_catalog_seed_path

CATALOG_TABLES = (
    "providers",
    "regions",
    "zones",
    "instance_types",
    "instance_type_zones",
    "models",
)


async def _snapshot(engine: AsyncEngine) -> dict[str, list[tuple[object, ...]]]:
    snapshot = {}
    async with engine.connect() as conn:
        for table in CATALOG_TABLES:
            rows = await conn.execute(text(f"SELECT * FROM {table} ORDER BY 1, 2"))
            snapshot[table] = [tuple(r) for r in rows]
    return snapshot


async def test_seed_twice_leaves_the_same_rows(engine: AsyncEngine) -> None:
    before = await _snapshot(engine)  # the fixture seeded once already
    await apply_sql_file(engine, default_catalog_seed_path())
    await apply_sql_file(engine, default_catalog_seed_path())
    assert await _snapshot(engine) == before
    assert all(before[t] for t in CATALOG_TABLES)


SET_L4 = text(
    "UPDATE instance_types SET is_active = :active, cost_per_hour_eur = :price "
    "WHERE code = 'L4-1-24G'"
)
GET_L4 = text("SELECT is_active, cost_per_hour_eur FROM instance_types WHERE code = 'L4-1-24G'")


async def test_seed_keeps_operator_choices(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(SET_L4, {"active": False, "price": Decimal("0.8")})
    try:
        await apply_sql_file(engine, default_catalog_seed_path())
        async with engine.connect() as conn:
            row = (await conn.execute(GET_L4)).one()
        assert tuple(row) == (False, Decimal("0.800000"))
    finally:
        async with engine.begin() as conn:
            await conn.execute(SET_L4, {"active": True, "price": Decimal("0.75")})


async def test_seed_has_gpu_types_with_prices_and_zones(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT t.code, t.cost_per_hour_eur, t.gpu_count, t.gpu_memory_gb, "
                "count(z.zone_id) "
                "FROM instance_types t JOIN providers p ON p.id = t.provider_id "
                "LEFT JOIN instance_type_zones z ON z.instance_type_id = t.id "
                "WHERE p.code = 'scaleway' GROUP BY 1, 2, 3, 4"
            )
        )
        types = {r[0]: r[1:] for r in rows}
        zones = set((await conn.scalars(text("SELECT code FROM zones"))).all())
        models = dict(
            (
                await conn.execute(
                    text("SELECT model_id, kind FROM models WHERE organization_id IS NULL")
                )
            ).all()
        )
    assert types["L4-1-24G"] == (Decimal("0.750000"), 1, 24, 2)
    assert types["L40S-1-48G"][0] == Decimal("1.400000")
    assert types["H100-1-80G"][:3] == (Decimal("2.730000"), 1, 80)
    assert types["H100-2-80G"][:3] == (Decimal("5.460000"), 2, 80)
    assert all(t[3] >= 1 for t in types.values()), "every type is offered in some zone"
    assert {"fr-par-1", "fr-par-2", "nl-ams-1", "pl-waw-2", "local-1"} <= zones
    assert models["inventiv/mock-echo"] == "chat"
    assert models["BAAI/bge-m3"] == "embedding"
    assert {"Qwen/Qwen2.5-0.5B-Instruct", "meta-llama/Llama-3.1-8B-Instruct"} <= set(models)
