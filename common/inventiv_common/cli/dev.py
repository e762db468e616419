"""`inventiv dev`: the whole platform on one machine, stopped cleanly by Ctrl-C.

Order: dev home and secrets, free ports, PostgreSQL and Redis (embedded unless
configured), migrations and seed, then api, orchestrator and finops as child
processes whose log lines are prefixed with their name. Meanwhile, in the background,
the worker agent's wheel that Scaleway VMs install is built into INVENTIV_HOME/agent.

It supervises them as a process supervisor would: a service that dies is restarted
after a pause that doubles with each crash (logged), and only a service that keeps
crashing (more than MAX_CRASHES within CRASH_WINDOW_S) stops the platform.
"""

from __future__ import annotations

import asyncio
import ctypes
import faulthandler
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from inventiv_common.cli import dev_env
from inventiv_common.cli.embedded import EmbeddedPostgres, EmbeddedRedis
from inventiv_common.settings import ConfigError
from inventiv_common.web import ensure_port_free

READY_TIMEOUT_S = 90.0
DEV_STAGE_DELAY_S = "2"
STOP_TIMEOUT_S = 15.0
# A service restarted this many times within the window is broken, not unlucky.
MAX_CRASHES = 5
CRASH_WINDOW_S = 120.0
FIRST_RESTART_DELAY_S = 0.5
MAX_RESTART_DELAY_S = 10.0


@dataclass
class ServiceSpec:
    name: str
    module: str
    port_env: str
    default_port: int

    @property
    def port(self) -> int:
        return int(os.environ.get(self.port_env, self.default_port))


SERVICES = (
    ServiceSpec("api", "inventiv_api", "API_PORT", 8003),
    ServiceSpec("orchestrator", "inventiv_orchestrator", "ORCHESTRATOR_PORT", 8001),
    ServiceSpec("finops", "inventiv_finops", "FINOPS_PORT", 8005),
)

# Secrets the dev platform generates once and keeps under .inventiv/secrets/.
GENERATED_SECRETS = ("JWT_SECRET", "PROVIDER_SETTINGS_KEY", "DEFAULT_ADMIN_PASSWORD")


def _say(message: str) -> None:
    print(f"[inventiv] {message}", flush=True)


def _die_with_parent() -> None:
    """Children get SIGTERM if `inventiv dev` itself dies, even by SIGKILL (Linux)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except OSError:
        pass


def prepare_secrets(secrets_dir: Path) -> tuple[dict[str, str], list[str]]:
    """Env entries pointing at secret files, and the names generated on this run."""
    secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    env: dict[str, str] = {}
    created: list[str] = []
    for name in GENERATED_SECRETS:
        if os.environ.get(name) or os.environ.get(f"{name}_FILE"):
            continue  # the operator chose this one
        path = secrets_dir / name.lower()
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(32 if name != "DEFAULT_ADMIN_PASSWORD" else 18))
            created.append(name)
        env[f"{name}_FILE"] = str(path)
    return env, created


class StopFlag:
    """A stop request that takes no lock, because signal handlers set it.

    A threading.Event set by a handler that interrupted the main thread inside that
    same Event's wait() deadlocks on the Event's own lock, and Ctrl-C never stops
    the platform. A plain attribute is atomic under the GIL; waiting polls it.
    """

    POLL_S = 0.05

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self._set and time.monotonic() < deadline:
            time.sleep(self.POLL_S)
        return self._set


class DevPlatform:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.postgres: EmbeddedPostgres | None = None
        self.redis: EmbeddedRedis | None = None
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.stop_requested = StopFlag()
        self.exit_code = 0
        self.env: dict[str, str] = {}
        # Each service's recent crash times; restarts asked by the output threads.
        self.crashes: dict[str, list[float]] = {}
        self.restarts: queue.Queue[tuple[float, ServiceSpec]] = queue.Queue()
        self._due: list[tuple[float, ServiceSpec]] = []

    # -- start ------------------------------------------------------------------
    def start_data_services(self) -> dict[str, str]:
        env: dict[str, str] = {}
        if os.environ.get("DATABASE_URL"):
            env["DATABASE_URL"] = os.environ["DATABASE_URL"]
            _say("PostgreSQL: DATABASE_URL from the environment")
        else:
            self.postgres = EmbeddedPostgres(self.home / "pgdata")
            env["DATABASE_URL"] = self.postgres.start()
            _say(f"PostgreSQL: embedded, data in {self.home / 'pgdata'}")
        if os.environ.get("REDIS_URL"):
            env["REDIS_URL"] = os.environ["REDIS_URL"]
            _say("Redis: REDIS_URL from the environment")
        else:
            port = (
                int(os.environ["INVENTIV_DEV_REDIS_PORT"])
                if os.environ.get("INVENTIV_DEV_REDIS_PORT")
                else None
            )
            self.redis = EmbeddedRedis(self.home / "redis", port)
            env["REDIS_URL"] = self.redis.start()
            _say(f"Redis: embedded on {env['REDIS_URL']}")
        return env

    def prepare_database(self, database_url: str) -> None:
        from inventiv_common.db.engine import make_engine
        from inventiv_common.db.migrate import run_migrations
        from inventiv_common.db.seed import apply_sql_file, default_catalog_seed_path

        async def run() -> str | None:
            engine = make_engine(database_url, pool_size=1, app_name="inventiv-dev")
            try:
                revision = await run_migrations(engine)
                await apply_sql_file(engine, default_catalog_seed_path())
                return revision
            finally:
                await engine.dispose()

        revision = asyncio.run(run())
        _say(f"database migrated to {revision} and catalog seeded")

    def spawn(self, spec: ServiceSpec, env: dict[str, str]) -> None:
        """Start a service. Called from the main thread only: the child's death signal
        (PR_SET_PDEATHSIG) fires when the *thread* that started it ends."""
        self.env = env
        proc = subprocess.Popen(
            [sys.executable, "-m", spec.module],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        self.children[spec.name] = proc
        threading.Thread(target=self._pump, args=(spec, proc), daemon=True).start()

    def _pump(self, spec: ServiceSpec, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        prefix = f"[{spec.name}] ".encode()
        for line in iter(proc.stdout.readline, b""):
            sys.stdout.buffer.write(prefix + line)
            sys.stdout.flush()
        code = proc.wait()
        if not self.stop_requested.is_set():
            self._crashed(spec, code)

    def _crashed(self, spec: ServiceSpec, code: int) -> None:
        now = time.monotonic()
        recent = [t for t in self.crashes.get(spec.name, []) if now - t < CRASH_WINDOW_S]
        recent.append(now)
        self.crashes[spec.name] = recent
        if len(recent) > MAX_CRASHES:
            _say(
                f"{spec.name} exited with code {code}, its {len(recent)}th crash in "
                f"{CRASH_WINDOW_S:.0f}s; stopping the platform"
            )
            self.exit_code = 1
            self.stop_requested.set()
            return
        delay = min(MAX_RESTART_DELAY_S, FIRST_RESTART_DELAY_S * 2 ** (len(recent) - 1))
        _say(
            f"{spec.name} exited with code {code}; restarting it in {delay:.1f}s "
            f"(crash {len(recent)} of {MAX_CRASHES} allowed in {CRASH_WINDOW_S:.0f}s)"
        )
        self.restarts.put((now + delay, spec))

    def restart_due(self) -> None:
        """Start again the services whose pause is over (main thread)."""
        while not self.restarts.empty():
            self._due.append(self.restarts.get_nowait())
        now = time.monotonic()
        for item in [d for d in self._due if d[0] <= now]:
            self._due.remove(item)
            if not self.stop_requested.is_set():
                _say(f"restarting {item[1].name}")
                self.spawn(item[1], self.env)

    def wait_ready(self) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_S
        pending = {spec.name: spec for spec in SERVICES}
        with httpx.Client(timeout=2.0) as client:
            while pending and time.monotonic() < deadline and not self.stop_requested.is_set():
                for name, spec in list(pending.items()):
                    try:
                        if client.get(f"http://127.0.0.1:{spec.port}/readyz").status_code == 200:
                            del pending[name]
                    except httpx.HTTPError:
                        pass
                self.restart_due()  # one that died while starting gets its restart
                time.sleep(0.3)
        return not pending

    # -- stop -------------------------------------------------------------------
    def stop(self) -> None:
        self.stop_requested.set()
        for proc in self.children.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for name, proc in self.children.items():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _say(f"{name} did not stop in {STOP_TIMEOUT_S:.0f}s; killing it")
                proc.kill()
                proc.wait()
        # Each step is announced, so a stop that hangs says where.
        if self.redis is not None:
            _say("stopping embedded Redis")
            self.redis.stop()
        if self.postgres is not None:
            _say("stopping embedded PostgreSQL")
            self.postgres.stop()
        _say("stopped")


def build_agent_package(home: Path) -> threading.Thread | None:
    """Builds the worker agent's wheel into `home`/agent in a thread (a few seconds of
    pip, which the services need not wait for: a VM asks for it minutes later), and
    says in one line when it is ready or why there is none. None when nothing is built."""
    from inventiv_common import agent_package

    if os.environ.get("AGENT_PACKAGE"):
        _say(f"agent package: AGENT_PACKAGE={os.environ['AGENT_PACKAGE']} (not built)")
        return None
    if agent_package.source_tree() is None:
        _say("agent package: not built (no source tree); Scaleway VMs need AGENT_PACKAGE")
        return None

    def build() -> None:
        try:
            wheel = agent_package.build(home / "agent")
        except Exception as exc:  # any cause: said, and the platform runs on without it
            _say(f"agent package not built ({type(exc).__name__}: {exc}); Scaleway VMs need it")
            return
        found = agent_package.find(str(wheel))
        digest = found.sha256[:12] if found else "?"
        _say(f"agent package ready for VMs: {wheel} (sha256 {digest}…)")

    thread = threading.Thread(target=build, name="agent-package", daemon=True)
    thread.start()
    return thread


def run_dev() -> int:
    home = dev_env.home()
    bind_host = os.environ.get("BIND_HOST", "127.0.0.1")
    for spec in SERVICES:
        ensure_port_free(bind_host, spec.port, spec.port_env)  # ConfigError: one line

    platform = DevPlatform(home)
    # `kill -USR1 <pid>` writes where every thread is to .inventiv/dev-stacks.txt: what
    # to look at when the platform does not start or stop.
    home.mkdir(parents=True, exist_ok=True)
    stacks = (home / "dev-stacks.txt").open("w")
    faulthandler.register(signal.SIGUSR1, file=stacks, all_threads=True)

    def on_signal(signum: int, _frame: object) -> None:
        platform.stop_requested.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    try:
        secret_env, created = prepare_secrets(home / "secrets")
        env = {**os.environ, "INVENTIV_ENV": os.environ.get("INVENTIV_ENV", "dev"), **secret_env}
        env.update(platform.start_data_services())
        env["AUTO_SEED_CATALOG"] = "0"  # seeded just below, once, before the services start
        env.setdefault("ORCHESTRATOR_URL", f"http://127.0.0.1:{SERVICES[1].port}")
        # Mock servers take a few seconds per stage, so a first deployment shows every
        # state on its way to ready (set these to 0 for speed).
        for name in ("MOCK_BOOT_DELAY_S", "MOCK_INSTALL_DELAY_S", "MOCK_ENGINE_STARTUP_DELAY_S"):
            env.setdefault(name, DEV_STAGE_DELAY_S)
        # Workers reach the control plane through the api, wherever API_PORT put it.
        env.setdefault("WORKER_CONTROL_PLANE_URL", f"http://127.0.0.1:{SERVICES[0].port}")
        build_agent_package(home)
        platform.prepare_database(env["DATABASE_URL"])
        # The operator's own DATABASE_URL may carry a password: it is not written down.
        shared = {**env, "DATABASE_URL": "" if platform.postgres is None else env["DATABASE_URL"]}
        dev_env.write(home, shared)
        for spec in SERVICES:
            platform.spawn(spec, env)
        if platform.wait_ready():
            _print_summary(home, created)
        elif not platform.stop_requested.is_set():
            _say(f"services not ready after {READY_TIMEOUT_S:.0f}s; stopping")
            platform.exit_code = 1
            platform.stop_requested.set()
        while not platform.stop_requested.wait(timeout=0.2):
            platform.restart_due()
    except ConfigError as exc:
        print(f"inventiv dev: {exc}", file=sys.stderr)
        platform.exit_code = 2
    finally:
        dev_env.remove(home)
        platform.stop()
    return platform.exit_code


def _print_summary(home: Path, created: list[str]) -> None:
    api = SERVICES[0].port
    _say("all services ready:")
    _say(f"  api           http://127.0.0.1:{api}  (Swagger UI: /swagger-ui)")
    _say(f"  orchestrator  http://127.0.0.1:{SERVICES[1].port}/admin/status")
    _say(f"  finops        http://127.0.0.1:{SERVICES[2].port}/readyz")
    username = os.environ.get("DEFAULT_ADMIN_USERNAME", "admin")
    password_file = home / "secrets" / "default_admin_password"
    chosen = os.environ.get("DEFAULT_ADMIN_PASSWORD") or os.environ.get(
        "DEFAULT_ADMIN_PASSWORD_FILE"
    )
    if chosen and password_file.exists():
        # The admin was made by an earlier run, with the generated password: a chosen
        # one applies only to an admin not yet created, and never overwrites a password.
        _say(
            f"  admin login   {username} / (password in {password_file}: the admin existed "
            "before, so DEFAULT_ADMIN_PASSWORD was not applied)"
        )
    elif os.environ.get("DEFAULT_ADMIN_PASSWORD"):
        _say(f"  admin login   {username} / (the DEFAULT_ADMIN_PASSWORD you set)")
    elif chosen_file := os.environ.get("DEFAULT_ADMIN_PASSWORD_FILE"):
        _say(f"  admin login   {username} / (password in {chosen_file})")
    elif "DEFAULT_ADMIN_PASSWORD" in created:
        # Shown this once; afterwards it stays only in the 0600 file.
        password = password_file.read_text().strip()
        _say(f"  admin login   {username} / {password}  (saved in {password_file})")
    elif password_file.exists():
        _say(f"  admin login   {username} / (password in {password_file})")
    _say("Ctrl-C stops everything")
