"""JSON-lines logging for every service, including uvicorn's own loggers."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

# Record attributes that are not a caller's `extra=` fields; uvicorn's colour copy
# of the message is dropped too.
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({})).keys()) | {
    "message",
    "asctime",
    "color_message",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        # Anything passed through `extra=` is kept as a field of its own.
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def logging_config(service: str, level: str = "INFO", fmt: str = "json") -> dict[str, Any]:
    """A dictConfig for the root logger and uvicorn's, usable as uvicorn's log_config."""
    formatter: dict[str, Any] = (
        {"()": JsonFormatter, "service": service}
        if fmt == "json"
        else {"format": f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s"}
    )
    handler = {"class": "logging.StreamHandler", "formatter": "main", "stream": sys.stderr}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "handlers": {"main": handler},
        "root": {"handlers": ["main"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": True, "level": "WARNING"},
            # Alembic narrates every context it opens; its warnings are what matter.
            "alembic": {"handlers": [], "propagate": True, "level": "WARNING"},
            # One line per outgoing request (probes, proxying) is noise at INFO.
            "httpx": {"handlers": [], "propagate": True, "level": "WARNING"},
        },
    }


def setup_logging(service: str, level: str = "INFO", fmt: str = "json") -> None:
    import logging.config

    logging.config.dictConfig(logging_config(service, level, fmt))
