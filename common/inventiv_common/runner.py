"""Starting a service process: settings checks, logging, uvicorn with graceful shutdown."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

import uvicorn
from fastapi import FastAPI

from inventiv_common.logs import logging_config, setup_logging
from inventiv_common.settings import CommonSettings, ConfigError, load_settings
from inventiv_common.web import ensure_port_free

S = TypeVar("S", bound=CommonSettings)


def run_service(
    settings_cls: type[S],
    create_app: Callable[[S], FastAPI],
    *,
    port_env: str,
) -> None:
    name = settings_cls.service_name
    try:
        settings = load_settings(settings_cls)
        settings.check_ready_to_start()
        port: int = getattr(settings, "port")  # noqa: B009 - every service settings has one
        ensure_port_free(settings.bind_host, port, port_env)
    except ConfigError as exc:
        # One line, no traceback: this is the operator's to fix, not a crash.
        print(f"{name}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    setup_logging(name, settings.log_level, settings.log_format)
    uvicorn.run(
        create_app(settings),
        host=settings.bind_host,
        port=port,
        log_config=logging_config(name, settings.log_level, settings.log_format),
        timeout_graceful_shutdown=int(settings.shutdown_timeout_s),
        server_header=False,
    )
