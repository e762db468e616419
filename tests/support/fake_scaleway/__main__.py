"""Run the fake Scaleway API on its own: `python -m tests.support.fake_scaleway --port N`.

It prints the settings that point the platform at it, then serves until interrupted.
"""

from __future__ import annotations

import argparse
import threading

from tests.support.fake_scaleway.cloud import DEFAULT_ACCOUNT, FakeScalewayCloud
from tests.support.fake_scaleway.http_api import FakeScalewayServer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake Scaleway API on loopback")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument(
        "--transition-s", type=float, default=2.0, help="how long a server takes to start/stop"
    )
    parser.add_argument("--public-address", default="127.0.0.1")
    args = parser.parse_args(argv)
    cloud = FakeScalewayCloud(transition_s=args.transition_s, public_address=args.public_address)
    server = FakeScalewayServer(cloud, host=args.host, port=args.port).start()
    account = DEFAULT_ACCOUNT
    print(
        f"SCALEWAY_API_URL={server.url} SCW_ACCESS_KEY={account.access_key} "
        f"SCW_SECRET_KEY={account.secret_key} SCW_DEFAULT_PROJECT_ID={account.default_project_id}",
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
