"""The fake cloud: records, accounts, faults, and the clock that moves servers along.

A server in a transient state (`starting`, `stopping`) reaches its next state
`transition_s` after the action, moved by a ticker thread, so a client must poll as it
would against Scaleway. When a server reaches `running`, `on_running(server, user_data)`
is called in a thread of its own with the server as the API shows it and its user data
(what a VM would read from the metadata service at boot); `on_stopped(server)` when a
server that ran stops or is terminated.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from tests.support.fake_scaleway import errors
from tests.support.fake_scaleway.catalog import server_types_in
from tests.support.fake_scaleway.faults import (
    QUOTA_BLOCK_VOLUMES,
    QUOTA_FLEXIBLE_IPS,
    QUOTA_GPUS,
    QUOTA_SERVERS,
    FaultPlan,
)
from tests.support.fake_scaleway.state import Account, Server, Store, Transition, now_iso
from tests.support.fake_scaleway.views import server_json

log = logging.getLogger(__name__)

OnRunning = Callable[[dict[str, Any], dict[str, bytes]], None]
OnStopped = Callable[[dict[str, Any]], None]

# Valid for the SDK's checks (access key `SCW` + 17 characters, UUID secret and project).
DEFAULT_ACCOUNT = Account(
    access_key="SCWFAKEACCESSKEY0001",
    secret_key="5ca1ab1e-0000-4000-8000-000000000001",
    organization_id="0a9a0000-0000-4000-8000-000000000001",
    project_ids=("b10c0000-0000-4000-8000-000000000001",),
)


class FakeScalewayCloud(Store):
    def __init__(
        self,
        *,
        accounts: Iterable[Account] = (DEFAULT_ACCOUNT,),
        transition_s: float = 0.05,
        public_address: str = "127.0.0.1",
        flexible_ip_network: str = "127.0.1.0/24",
        on_running: OnRunning | None = None,
        on_stopped: OnStopped | None = None,
        tick_s: float = 0.01,
    ) -> None:
        super().__init__()
        self.accounts = {a.secret_key: a for a in accounts}
        self.transition_s = transition_s
        self.public_address = public_address
        # Flexible IPs get addresses of their own, on loopback by default so that
        # something bound there (the VM's agent) is reachable.
        self._free_addresses = (str(a) for a in ipaddress.ip_network(flexible_ip_network).hosts())
        self.on_running = on_running
        self.on_stopped = on_stopped
        self.faults = FaultPlan()
        # (method, path, status) of every request answered, oldest first.
        self.requests: list[tuple[str, str, int]] = []
        self.hook_errors: list[BaseException] = []
        self._hooks: list[threading.Thread] = []
        self._tick_s = tick_s
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------
    def start(self) -> None:
        if self._ticker is None:
            self._stop.clear()
            self._ticker = threading.Thread(target=self._tick, name="fake-scaleway-clock")
            self._ticker.daemon = True
            self._ticker.start()

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
            self._ticker = None
        self.wait_for_hooks()

    def wait_for_hooks(self, timeout_s: float = 30) -> None:
        """Until every hook started so far has returned."""
        deadline = time.monotonic() + timeout_s
        for hook in list(self._hooks):
            hook.join(timeout=max(0.0, deadline - time.monotonic()))

    # --- accounts ----------------------------------------------------------------
    def add_account(self, account: Account) -> None:
        with self.lock:
            self.accounts[account.secret_key] = account

    def authenticate(self, token: str | None) -> Account:
        if not token:
            raise errors.denied_authentication("invalid_argument")
        account = self.accounts.get(token)
        if account is None or self.faults.reject_credentials:
            raise errors.denied_authentication("not_found")
        return account

    @staticmethod
    def check_project(account: Account, project: str) -> None:
        if project not in account.project_ids:
            raise errors.permissions_denied("project", "write")

    # --- quotas ------------------------------------------------------------------
    def check_quota(self, resource: str, project: str, adding: int) -> None:
        limit = self.faults.quota(resource)
        if limit is None:
            return
        current = self._usage(resource, project)
        if current + adding > limit:
            raise errors.quotas_exceeded(resource, limit, current, project)

    def _usage(self, resource: str, project: str) -> int:
        servers = [s for s in self.servers.values() if s.project == project]
        if resource == QUOTA_SERVERS:
            return len(servers)
        if resource == QUOTA_GPUS:
            return sum(server_types_in(s.zone)[s.commercial_type].gpu for s in servers)
        if resource == QUOTA_FLEXIBLE_IPS:
            return sum(1 for ip in self.ips.values() if ip.project == project and not ip.dynamic)
        if resource == QUOTA_BLOCK_VOLUMES:
            return sum(1 for v in self.block_volumes.values() if v.project == project)
        raise ValueError(resource)

    def next_flexible_address(self) -> str:
        return next(self._free_addresses)

    # --- server transitions ------------------------------------------------------
    def begin(self, server: Server, state: str, detail: str, target: str) -> None:
        server.state, server.state_detail = state, detail
        server.transition = Transition(target, time.monotonic() + self.transition_s)
        server.modified_at = now_iso()

    def _tick(self) -> None:
        while not self._stop.wait(self._tick_s):
            try:
                self.settle()
            except Exception:  # the clock must outlive one bad record
                log.exception("fake scaleway clock pass failed")

    def settle(self) -> None:
        """Move every server and volume whose transition is due; then run the hooks."""
        now = time.monotonic()
        calls: list[tuple[Callable[..., None], tuple[Any, ...]]] = []
        with self.lock:
            for volume in self.block_volumes.values():
                if volume.status == "creating" and volume.ready_at <= now:
                    volume.status = "in_use" if volume.server_id else "available"
            for server in list(self.servers.values()):
                if server.transition is None or server.transition.due > now:
                    continue
                target = server.transition.target
                server.transition = None
                server.modified_at = now_iso()
                if target == "running":
                    server.state, server.state_detail = "running", "booted"
                    if self.on_running:
                        view = server_json(self, server)
                        calls.append((self.on_running, (view, dict(server.user_data))))
                    continue
                if target == "stopped":
                    server.state, server.state_detail = "stopped", ""
                    view = server_json(self, server)
                else:
                    # The hook sees the server as it last was, named as gone.
                    view = server_json(self, server) | {"state": "terminated"}
                    self.delete_server(server, terminated=True)
                if self.on_stopped:
                    calls.append((self.on_stopped, (view,)))
        for hook, args in calls:
            self._run_hook(hook, args)

    def _run_hook(self, hook: Callable[..., None], args: tuple[Any, ...]) -> None:
        def run() -> None:
            try:
                hook(*args)
            except BaseException as exc:
                self.hook_errors.append(exc)

        thread = threading.Thread(target=run, name="fake-scaleway-hook", daemon=True)
        self._hooks.append(thread)
        thread.start()

    def delete_server(self, server: Server, *, terminated: bool) -> None:
        """Remove `server`. Block volumes are detached and kept, as are flexible IPs;
        its dynamic IP is released. Local volumes are deleted by `terminate` and only
        detached by a plain delete (what the Instance API documents)."""
        stamp = now_iso()
        for kind, volume_id in server.volumes.values():
            if kind == "sbs":
                volume = self.block_volumes[volume_id]
                volume.server_id, volume.attached_at = None, None
                volume.status, volume.last_detached_at, volume.updated_at = (
                    "available",
                    stamp,
                    stamp,
                )
            elif terminated:
                self.instance_volumes.pop(volume_id, None)
            else:
                self.instance_volumes[volume_id].server_id = None
        for ip_id in server.flexible_ip_ids:
            if ip_id in self.ips:
                self.ips[ip_id].server_id = None
        if server.dynamic_ip_id:
            self.ips.pop(server.dynamic_ip_id, None)
        del self.servers[server.id]
