"""`inventiv scaleway check`: can the platform's Scaleway account deploy, and on what?

It reads the settings the orchestrator deploys with (SCALEWAY_*, each secret also as a
`_FILE`) and asks Scaleway through the provider the orchestrator uses, so a check that
passes here is one the platform's own calls pass: the key is in Scaleway's format, may
read and change servers in the project, and the configured zones offer GPU types, shown
with their hourly price, GPUs, GPU memory and stock. It changes nothing at Scaleway.

The secret key is never printed: the access key is shown shortened, and the reasons
name a field or Scaleway's answer, never a value.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from decimal import Decimal

from inventiv_common.providers.base import CatalogType, ProviderError, ServerSpec
from inventiv_common.providers.scaleway.credentials import refusal
from inventiv_common.providers.scaleway.provider import ScalewayProvider
from inventiv_common.providers.scaleway.settings import ScalewaySettings
from inventiv_common.providers.scaleway.shapes import OURS, describe
from inventiv_common.settings import ConfigError, load_settings

# Stock levels a deployment may be placed on; `shortage` takes none.
DEPLOYABLE = ("available", "scarce")


class Unusable(Exception):
    """The account cannot deploy: the one-line reason."""


def _no_user_data(spec: ServerSpec) -> bytes:
    raise ProviderError("`inventiv scaleway check` creates no server", retryable=False)


def settings() -> ScalewaySettings:
    found = load_settings(ScalewaySettings)
    missing = [
        name
        for name, value in (
            ("SCALEWAY_ACCESS_KEY", found.scaleway_access_key),
            ("SCALEWAY_SECRET_KEY", found.scaleway_secret_key),
            ("SCALEWAY_PROJECT_ID", found.scaleway_project_id),
        )
        if not value
    ]
    if missing:
        raise ConfigError(
            f"{', '.join(missing)} not set (secrets may be given as NAME_FILE): "
            "the platform's Scaleway account is what this checks"
        )
    return found


def table(types: list[CatalogType], zone: str) -> list[str]:
    """The zone's GPU types, cheapest first, as aligned text."""
    offered = sorted(
        (t for t in types if zone in t.availability), key=lambda t: (t.hourly_price_eur, t.code)
    )
    if not offered:
        return [f"  no GPU types in {zone}"]
    lines = [f"  {'type':<16} {'GPUs':>4} {'GPU memory':>10} {'EUR/hour':>9}  availability"]
    for kind in offered:
        price = kind.hourly_price_eur.quantize(Decimal("0.0001"))
        lines.append(
            f"  {kind.code:<16} {kind.gpu_count:>4} {kind.gpu_memory_gb:>7} GB "
            f"{price:>9}  {kind.availability[zone]}"
        )
    return lines


async def check(found: ScalewaySettings, say: Callable[[str], None]) -> None:
    """Prints what Scaleway says; raises Unusable with the reason when it cannot deploy."""
    credentials = found.platform_scaleway_credentials()
    assert credentials is not None  # settings() made sure
    provider = ScalewayProvider(found.scaleway_config(credentials), _no_user_data)
    config = provider.config
    shown = describe(config)
    secret_from = "SCALEWAY_SECRET_KEY_FILE" if _from_file() else "SCALEWAY_SECRET_KEY"
    say(f"Scaleway API   {shown['api_url']}")
    say(f"access key     {shown['access_key']}  (secret key from {secret_from}, not shown)")
    say(f"project        {config.project_id}")
    say(f"zones          {', '.join(config.zones)}")
    try:
        refused = await refusal(provider)
        if refused is not None:
            say(f"credentials    refused ({refused.code})")
            raise Unusable(str(refused))
        say("credentials    accepted: may read, create and delete servers in the project")
        ours = await provider.list_servers()
        held = f"{len(ours)} server(s) tagged {OURS!r} in these zones"
        say(f"project        {held}{' (deployments or leftovers)' if ours else ''}")
        types = await provider.sync_catalog()
    except ProviderError as exc:
        raise Unusable(str(exc)) from None
    finally:
        provider.calls.close()
    deployable: list[str] = []
    for zone in config.zones:
        say(f"zone {zone}:")
        for line in table(types, zone):
            say(line)
        deployable += [f"{t.code}@{zone}" for t in types if t.availability.get(zone) in DEPLOYABLE]
    if not deployable:
        raise Unusable(
            f"no GPU type is in stock in {', '.join(config.zones)} (set SCALEWAY_ZONES to "
            "zones that offer GPUs, such as fr-par-2 or pl-waw-2)"
        )
    say(f"usable: {len(deployable)} GPU type(s) deployable now")


def _from_file() -> bool:
    return bool(os.environ.get("SCALEWAY_SECRET_KEY_FILE"))


def run() -> int:
    """0 when the account can deploy; 1 with the reason on stderr otherwise (a setting
    missing or malformed raises ConfigError, which the command reports with code 2)."""
    found = settings()
    try:
        asyncio.run(check(found, lambda line: print(line, flush=True)))
    except Unusable as exc:
        print(f"inventiv scaleway check: not usable: {exc}", file=sys.stderr)
        return 1
    return 0
