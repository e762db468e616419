"""`inventiv scaleway smoke`: one model deployed on one GPU type, one chat, then nothing.

It drives a running platform through its public API only, as an operator or a client
would: log in (or an API key), find the type, zone and model in the catalog, ask for a
deployment, follow the instance to ready, make a temporary API key, send one chat
completion with the official `openai` client, terminate the instance, wait until it is
terminated, revoke the key, and report what the run cost. Each step is printed with the
time since the start.

Whatever fails (or Ctrl-C), what it started is undone: the instance is terminated and
waited for, the key revoked; the exit code is then 1 and the last line names the step.
The key also expires by itself an hour after it is made, should revoking it fail.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from inventiv_common.cli.smoke_cost import Cost, cost_of

Say = Callable[[str], None]


class StepFailed(Exception):
    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.reason = reason


@dataclass
class Options:
    api_url: str
    zone: str
    instance_type: str
    model: str
    username: str = "admin"
    password: str | None = None
    api_key: str | None = None
    prompt: str = "Say hello in five words."
    max_tokens: int = 16
    ready_timeout_s: float = 1800.0
    terminate_timeout_s: float = 600.0
    cost_wait_s: float = 150.0
    poll_s: float = 2.0


class Smoke:
    def __init__(self, options: Options, say: Say, complain: Say) -> None:
        self.o = options
        self._say = say
        self._complain = complain  # the failure's one line, and warnings
        self.started = time.monotonic()
        self.step = "start"
        headers = {"Origin": options.api_url.rstrip("/")}
        if options.api_key:
            headers["Authorization"] = f"Bearer {options.api_key}"
        self.http = httpx.Client(base_url=options.api_url, headers=headers, timeout=60)
        self.instance: dict[str, Any] | None = None
        self.key_id: str | None = None
        self.key: str | None = None
        self.hourly_price = Decimal(0)

    def say(self, message: str) -> None:
        self._say(f"[{time.monotonic() - self.started:7.1f}s] {self.step}: {message}")

    @contextmanager
    def doing(self, step: str) -> Iterator[None]:
        self.step = step
        try:
            yield
        except StepFailed:
            raise
        except httpx.HTTPError as exc:
            raise StepFailed(step, f"the api could not be reached: {type(exc).__name__}") from None

    def call(self, method: str, path: str, expect: int, **kw: Any) -> Any:
        answer = self.http.request(method, path, **kw)
        if answer.status_code != expect:
            raise StepFailed(
                self.step, f"{method} {path} answered {answer.status_code}: {_error_of(answer)}"
            )
        return answer.json() if answer.content else None

    # -- the run ---------------------------------------------------------------------
    def run(self) -> int:
        failure: StepFailed | None = None
        try:
            self.login()
            offer = self.find_offer()
            self.deploy(offer)
            self.wait_ready()
            self.make_key()
            self.chat()
        except StepFailed as exc:
            failure = exc
        except KeyboardInterrupt:
            failure = StepFailed(self.step, "interrupted")
        finally:
            # Undone even after a failure or Ctrl-C: nothing this run started may bill.
            failure = self.clean_up() or failure
        self.report_cost()
        self.http.close()
        if failure is not None:
            self._complain(f"smoke failed at {failure.step}: {failure.reason}")
            return 1
        self._say(f"smoke passed in {time.monotonic() - self.started:.0f}s")
        return 0

    def login(self) -> None:
        with self.doing("login"):
            if self.o.api_key:
                me = self.call("GET", "/auth/me", 200)
                self.say(f"API key of {me.get('username')} at {self.o.api_url}")
                return
            if not self.o.password:
                raise StepFailed("login", "no password (INVENTIV_PASSWORD, --password-file)")
            self.call(
                "POST",
                "/auth/login",
                200,
                json={"username": self.o.username, "password": self.o.password},
            )
            self.say(f"{self.o.username} at {self.o.api_url}")

    def find_offer(self) -> dict[str, str]:
        with self.doing("catalog"):
            providers = self.call("GET", "/providers", 200)
            scaleway = next((p["id"] for p in providers if p["code"] == "scaleway"), None)
            if scaleway is None:
                raise StepFailed(self.step, "the catalog has no Scaleway provider")
            types = [
                t
                for t in self.call("GET", "/instance_types", 200)
                if t["provider_id"] == scaleway and t["code"] == self.o.instance_type
            ]
            if not types:
                raise StepFailed(self.step, f"no Scaleway type {self.o.instance_type}")
            kind = types[0]
            zones = self.call("GET", f"/instance_types/{kind['id']}/zones", 200)
            zone = next((z for z in zones if z["code"] == self.o.zone), None)
            if zone is None:
                offered = ", ".join(z["code"] for z in zones) or "none"
                raise StepFailed(
                    self.step, f"{kind['code']} is not offered in {self.o.zone} ({offered})"
                )
            models = [m for m in self.call("GET", "/models", 200) if m["model_id"] == self.o.model]
            if not models:
                raise StepFailed(self.step, f"no model {self.o.model} in this workspace")
            self.hourly_price = Decimal(str(kind["cost_per_hour_eur"]))
            self.say(
                f"{kind['code']} ({kind['gpu_count']} GPU, {kind['gpu_memory_gb']} GB, "
                f"{self.hourly_price} EUR/hour) in {zone['code']} "
                f"({zone.get('availability', 'offered')}), model {self.o.model}"
            )
            return {
                "instance_type_id": kind["id"],
                "zone_id": zone["id"],
                "model_id": models[0]["id"],
            }

    def deploy(self, offer: dict[str, str]) -> None:
        with self.doing("deploy"):
            self.instance = self.call("POST", "/deployments", 202, json=offer)
            assert self.instance is not None
            self.say(f"instance {self.instance['id']} requested")

    def follow(self, until: str, timeout_s: float) -> dict[str, Any]:
        """Polls the instance, printing each state it takes, until `until`."""
        assert self.instance is not None
        path = f"/instances/{self.instance['id']}"
        deadline = time.monotonic() + timeout_s
        seen: tuple[str, int] | None = None
        while True:
            current = self.call("GET", path, 200)
            self.instance = current
            now = (current["status"], current["progress_percent"])
            if now != seen:
                seen = now
                where = f" at {current['ip_address']}" if current.get("ip_address") else ""
                self.say(f"{now[0]} ({now[1]} %){where}")
            if current["status"] == until:
                return current
            if current["status"] == "failed" and until != "terminated":
                raise StepFailed(
                    self.step,
                    f"the instance failed ({current.get('error_code')}): "
                    f"{current.get('error_message')}",
                )
            if time.monotonic() > deadline:
                raise StepFailed(
                    self.step, f"still {current['status']} after {timeout_s:.0f}s (not {until})"
                )
            time.sleep(self.o.poll_s)

    def wait_ready(self) -> None:
        with self.doing("ready"):
            self.follow("ready", self.o.ready_timeout_s)

    def make_key(self) -> None:
        with self.doing("api key"):
            expires = datetime.now(UTC) + timedelta(hours=1)
            made = self.call(
                "POST",
                "/api_keys",
                201,
                json={
                    "name": "scaleway smoke (temporary)",
                    "allowed_models": [self.o.model],
                    "expires_at": expires.isoformat(),
                },
            )
            self.key_id, self.key = made["id"], made["key"]
            self.say(f"temporary key {made['key_prefix']}… made, expiring in one hour")

    def chat(self) -> None:
        with self.doing("chat"):
            try:
                import openai
            except ImportError:
                raise StepFailed(self.step, "the openai package is not installed") from None
            client = openai.OpenAI(
                api_key=self.key, base_url=self.o.api_url.rstrip("/") + "/v1", timeout=300
            )
            try:
                # The gateway's route table follows the instance within a second or two.
                deadline = time.monotonic() + 120
                while self.o.model not in [m.id for m in client.models.list().data]:
                    if time.monotonic() > deadline:
                        raise StepFailed(self.step, "the model never showed in /v1/models")
                    time.sleep(1.0)
                answer = client.chat.completions.create(
                    model=self.o.model,
                    messages=[{"role": "user", "content": self.o.prompt}],
                    max_tokens=self.o.max_tokens,
                )
            except openai.OpenAIError as exc:
                raise StepFailed(self.step, f"{type(exc).__name__}: {exc}") from None
            finally:
                client.close()
            usage = answer.usage
            if usage is None or not answer.choices:
                raise StepFailed(self.step, "the answer carries no usage or no choice")
            text = (answer.choices[0].message.content or "").strip().replace("\n", " ")
            self.say(f"answer {text[:120]!r}")
            self.say(
                f"tokens: prompt {usage.prompt_tokens}, completion {usage.completion_tokens}, "
                f"total {usage.total_tokens}"
            )

    # -- undoing ---------------------------------------------------------------------
    def clean_up(self) -> StepFailed | None:
        """Terminates the instance and revokes the key; the first failure of either."""
        failure: StepFailed | None = None
        if self.instance is not None and self.instance["status"] != "terminated":
            try:
                with self.doing("terminate"):
                    self.call("DELETE", f"/instances/{self.instance['id']}", 202)
                    self.say("termination requested")
                    self.follow("terminated", self.o.terminate_timeout_s)
            except StepFailed as exc:
                failure = exc
                self._complain(
                    f"WARNING: instance {self.instance['id']} may still hold a server: "
                    "see `inventiv scaleway check` and the Scaleway console"
                )
        if self.key_id is not None:
            try:
                with self.doing("revoke key"):
                    self.call("DELETE", f"/api_keys/{self.key_id}", 204)
                    self.say("temporary key revoked")
            except StepFailed as exc:
                failure = failure or exc
        return failure

    def report_cost(self) -> None:
        if self.instance is None:
            return
        self.step = "cost"
        try:
            cost: Cost = cost_of(self.http, self.instance, self.hourly_price, self.o.cost_wait_s)
        except httpx.HTTPError as exc:
            self.say(f"not known: the api could not be reached ({type(exc).__name__})")
            return
        self.say(cost.sentence())


def _error_of(answer: httpx.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        return answer.text[:200]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return f"{error.get('code')}: {error.get('message')}"
    return str(body)[:200]
