"""Migration 0007: every model gets a context length (the seed catalog's for its engine
id, else 8,192 tokens), and the column requires one from then on."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from inventiv_common.db.engine import make_engine
from inventiv_common.db.migrate import run_downgrade, run_migrations


async def test_models_without_a_context_length_get_one(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url, pool_size=1)
    try:
        await run_migrations(engine, "0006")
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO models (name, model_id, context_length) VALUES "
                    "('Qwen', 'Qwen/Qwen2.5-0.5B-Instruct', NULL), "
                    "('Unknown', 'someone/unknown', NULL), "
                    "('Set', 'someone/long', 131072)"
                )
            )
        await run_migrations(engine)
        async with engine.connect() as conn:
            lengths = dict(
                (await conn.execute(text("SELECT model_id, context_length FROM models"))).all()
            )
        assert lengths == {
            "Qwen/Qwen2.5-0.5B-Instruct": 32768,
            "someone/unknown": 8192,
            "someone/long": 131072,
        }
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO models (name, model_id) VALUES ('D', 'd/d')"))
            default = await conn.scalar(
                text("SELECT context_length FROM models WHERE model_id = 'd/d'")
            )
        assert default == 8192
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(
                    text("UPDATE models SET context_length = NULL WHERE model_id = 'd/d'")
                )
        await run_downgrade(engine, "0006")
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE models SET context_length = NULL WHERE model_id = 'd/d'")
            )
    finally:
        await engine.dispose()
