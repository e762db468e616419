"""Run the fake Scaleway API on its own: `python -m tests.support.fake_scaleway --port N`.

It prints the settings that point the platform at it, then serves until interrupted.
With `--vms DIR`, each server powered on boots its user data as a VM on this machine
(the real worker agent, the mock engine in vLLM's place, listening on the VM_AGENT_PORT
and VM_ENGINE_PORT the user data gives: one VM at a time), so a deployment from `make
dev` reaches ready and serves chat.
"""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

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
    parser.add_argument("--vms", type=Path, help="boot powered-on servers as VMs under DIR")
    args = parser.parse_args(argv)
    vms = None
    if args.vms is not None:
        from tests.support.scaleway_vm import VmHost

        vms = VmHost(args.vms, own_ports=False)
    cloud = FakeScalewayCloud(
        transition_s=args.transition_s,
        public_address=args.public_address,
        on_running=vms.on_running if vms else None,
        on_stopped=vms.on_stopped if vms else None,
    )
    server = FakeScalewayServer(cloud, host=args.host, port=args.port).start()
    account = DEFAULT_ACCOUNT
    print(
        # The fake account's keys (not secrets): what the platform's settings take.
        f"SCALEWAY_API_URL={server.url} SCALEWAY_ACCESS_KEY={account.access_key} "
        f"SCALEWAY_SECRET_KEY={account.secret_key} "
        f"SCALEWAY_PROJECT_ID={account.default_project_id}",
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if vms is not None:
            vms.stop_all()


if __name__ == "__main__":
    main()
