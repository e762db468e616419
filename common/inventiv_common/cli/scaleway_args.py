"""`inventiv scaleway check | smoke`: the arguments, and where their defaults come from.

Beside a running `inventiv dev` both need nothing but the Scaleway settings: the api's
address comes from `.inventiv/dev.env`, the admin's password from the file `inventiv
dev` keeps it in. A password is better given through INVENTIV_PASSWORD or a file than
on the command line, which other users of the machine can read.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from inventiv_common.cli import dev_env
from inventiv_common.settings import ConfigError

DEFAULT_API_URL = "http://127.0.0.1:8003"


def add_scaleway(sub: Any) -> None:
    scaleway = sub.add_parser("scaleway", help="check a Scaleway account, run a smoke deployment")
    actions = scaleway.add_subparsers(dest="scaleway_command", required=True)
    actions.add_parser(
        "check",
        help="credentials, project, and the GPU types of each SCALEWAY_ZONES zone "
        "with price and stock (changes nothing)",
    )
    smoke = actions.add_parser(
        "smoke",
        help="deploy a model on a running platform, chat once, terminate, report the cost",
    )
    smoke.add_argument("--zone", required=True, help="e.g. fr-par-2")
    smoke.add_argument("--type", required=True, dest="instance_type", help="e.g. L4-1-24G")
    smoke.add_argument("--model", required=True, help="a model id of the catalog")
    smoke.add_argument(
        "--api",
        help=f"the api's address (default: INVENTIV_API_URL, the dev platform's, "
        f"else {DEFAULT_API_URL})",
    )
    smoke.add_argument("--username", default=os.environ.get("INVENTIV_USERNAME", "admin"))
    smoke.add_argument("--password", help="prefer INVENTIV_PASSWORD or --password-file")
    smoke.add_argument("--password-file", type=Path)
    smoke.add_argument("--prompt", default="Say hello in five words.")
    smoke.add_argument("--max-tokens", type=int, default=16)
    smoke.add_argument(
        "--ready-timeout", type=float, default=1800.0, help="seconds to reach ready (1800)"
    )
    smoke.add_argument(
        "--terminate-timeout", type=float, default=600.0, help="seconds to terminate (600)"
    )
    smoke.add_argument(
        "--cost-wait",
        type=float,
        default=150.0,
        help="seconds to wait for finops to bill the last minute before estimating (150)",
    )
    smoke.add_argument("--poll", type=float, default=2.0, help="seconds between looks (2)")


def run_scaleway(args: argparse.Namespace) -> int:
    if args.scaleway_command == "check":
        from inventiv_common.cli import scaleway_check

        return scaleway_check.run()
    from inventiv_common.cli.scaleway_smoke import Options, Smoke

    api_key = os.environ.get("INVENTIV_API_KEY") or None
    options = Options(
        api_url=_api_url(args.api),
        zone=args.zone,
        instance_type=args.instance_type,
        model=args.model,
        username=args.username,
        password=None if api_key else _password(args),
        api_key=api_key,
        prompt=args.prompt,
        max_tokens=args.max_tokens,
        ready_timeout_s=args.ready_timeout,
        terminate_timeout_s=args.terminate_timeout,
        cost_wait_s=args.cost_wait,
        poll_s=args.poll,
    )
    return Smoke(
        options,
        lambda line: print(line, flush=True),
        lambda line: print(line, file=sys.stderr, flush=True),
    ).run()


def _api_url(given: str | None) -> str:
    url = given or os.environ.get("INVENTIV_API_URL")
    if not url:
        # What `inventiv dev` tells its workers is the api's address.
        url = dev_env.load(dev_env.home()).get("WORKER_CONTROL_PLANE_URL", DEFAULT_API_URL)
    return url.rstrip("/")


def _password(args: argparse.Namespace) -> str:
    if args.password:
        return str(args.password)
    if os.environ.get("INVENTIV_PASSWORD"):
        return os.environ["INVENTIV_PASSWORD"]
    dev_file = dev_env.home() / "secrets" / "default_admin_password"
    path: Path | None = args.password_file or (dev_file if dev_file.is_file() else None)
    if path is None:
        raise ConfigError(
            "no password: set INVENTIV_PASSWORD, give --password-file, or set "
            "INVENTIV_API_KEY to an API key"
        )
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read: {exc.strerror}") from None
