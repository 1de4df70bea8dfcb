"""Structured logging: one JSON object per line, with the request id of the request being served.

``RequestIDFilter`` (attached to the console handler in settings) puts ``request_id`` on every record: the id from
``jobops.context`` while a request or task is being served, else the ``request_id`` of the ``request`` Django
attaches to its own records (``django.request`` logs 4xx/5xx responses after the middleware chain returned), else
``-``. ``JSONFormatter`` renders the record with the structured extras our code passes (method, path, status...).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from .context import request_id_var

#: ``extra=`` keys copied into the JSON line when a record carries them.
EXTRA_FIELDS = ("method", "path", "status", "duration_ms", "user_id", "task", "command")


def record_request_id(record: logging.LogRecord) -> str:
    current = request_id_var.get()
    if current:
        return current
    request = getattr(record, "request", None)
    return getattr(request, "request_id", None) or "-"


class RequestIDFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = record_request_id(record)
        return True


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or record_request_id(record),
        }
        for key in EXTRA_FIELDS:
            if key in record.__dict__:
                payload[key] = record.__dict__[key]
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)
