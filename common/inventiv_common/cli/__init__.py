"""The `inventiv` command: `dev`, `migrate`, `seed`, `rotate-provider-key`, the Mock
runtime commands and `scaleway check | smoke`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from inventiv_common.settings import ConfigError


def _database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        raise ConfigError("DATABASE_URL is not set")
    return url


async def _migrate(downgrade_to: str | None) -> str | None:
    from inventiv_common.db.engine import make_engine
    from inventiv_common.db.migrate import current_revision, run_downgrade, run_migrations

    engine = make_engine(_database_url(), pool_size=1, app_name="inventiv-cli")
    try:
        if downgrade_to is not None:
            await run_downgrade(engine, downgrade_to)
            return await current_revision(engine)
        return await run_migrations(engine)
    finally:
        await engine.dispose()


async def _seed(path: Path) -> None:
    from inventiv_common.db.engine import make_engine
    from inventiv_common.db.seed import apply_sql_file

    engine = make_engine(_database_url(), pool_size=1, app_name="inventiv-cli")
    try:
        await apply_sql_file(engine, path)
    finally:
        await engine.dispose()


async def _rotate_provider_key() -> int:
    from pydantic import Field, SecretStr

    from inventiv_common import provider_credentials
    from inventiv_common.crypto import DecryptionError, KeyRing
    from inventiv_common.db.engine import make_engine, make_session_factory
    from inventiv_common.settings import CommonSettings, load_settings

    class KeySettings(CommonSettings):
        secret_fields = CommonSettings.secret_fields | {"provider_settings_key"}
        provider_settings_key: SecretStr | None = Field(
            default=None, validation_alias="PROVIDER_SETTINGS_KEY"
        )

    settings = load_settings(KeySettings)
    if settings.provider_settings_key is None:
        raise ConfigError("PROVIDER_SETTINGS_KEY (or PROVIDER_SETTINGS_KEY_FILE) is not set")
    keyring = KeyRing(settings.provider_settings_key.get_secret_value())
    engine = make_engine(_database_url(), pool_size=1, app_name="inventiv-cli")
    try:
        async with make_session_factory(engine)() as session:
            try:
                changed = await provider_credentials.reseal_all(session=session, keyring=keyring)
            except DecryptionError as exc:
                raise ConfigError(
                    f"{exc}; keep the old key listed until rotation is done"
                ) from None
            await session.commit()
            return changed
    finally:
        await engine.dispose()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inventiv", description="Inventiv Agents control plane")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "dev",
        help="run the whole platform locally (embedded PostgreSQL and Redis when "
        "DATABASE_URL / REDIS_URL are unset)",
    )
    migrate = sub.add_parser("migrate", help="apply database migrations (DATABASE_URL)")
    migrate.add_argument(
        "--downgrade", metavar="REVISION", help="downgrade to REVISION instead (e.g. base)"
    )
    seed = sub.add_parser("seed", help="apply the catalog seed (DATABASE_URL)")
    seed.add_argument("--file", type=Path, help="seed file (default: seeds/catalog_seeds.sql)")
    sub.add_parser("mock-runtimes", help="list Mock servers and whether their runtime lives")
    for name, text in (
        ("worker-attach", "start (again) the local runtime of a Mock instance"),
        ("worker-detach", "stop the local runtime of a Mock instance, keeping its server"),
    ):
        attach = sub.add_parser(name, help=text)
        attach.add_argument("instance_id")
    sub.add_parser(
        "mock-runtime-sync",
        help="restart dead runtimes of live Mock instances, stop those of gone ones",
    )
    sub.add_parser(
        "rotate-provider-key",
        help="re-encrypt stored provider credentials with the first PROVIDER_SETTINGS_KEY entry",
    )
    from inventiv_common.cli.scaleway_args import add_scaleway

    add_scaleway(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command != "dev":
        from inventiv_common.cli import dev_env

        # Run beside `make dev`, the operator commands need nothing exported.
        dev_env.apply_defaults(dev_env.home())
    try:
        if args.command == "dev":
            from inventiv_common.cli.dev import run_dev

            raise SystemExit(run_dev())
        if args.command == "migrate":
            revision = asyncio.run(_migrate(args.downgrade))
            print(f"database at revision {revision or 'base'}")
        elif args.command == "seed":
            from inventiv_common.db.seed import default_catalog_seed_path

            path = args.file or default_catalog_seed_path()
            asyncio.run(_seed(path))
            print(f"seed applied: {path}")
        elif args.command in (
            "mock-runtimes",
            "worker-attach",
            "worker-detach",
            "mock-runtime-sync",
        ):
            from inventiv_common.cli.mock_runtimes import run

            for line in asyncio.run(
                run(args.command, getattr(args, "instance_id", None), _database_url())
            ):
                print(line)
        elif args.command == "scaleway":
            from inventiv_common.cli.scaleway_args import run_scaleway

            raise SystemExit(run_scaleway(args))
        elif args.command == "rotate-provider-key":
            changed = asyncio.run(_rotate_provider_key())
            print(f"re-encrypted {changed} provider setting value(s) with the active key")
    except ConfigError as exc:
        print(f"inventiv {args.command}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
