"""JSON-lines logging. Records carry the request id when there is one; never secrets, never bodies.

The access line written for every request (``AccessLog``) is on the hot path: when logging is set
up the way ``configure`` leaves it, the line is encoded with orjson and written straight to the JSON
handler's stream, byte for byte what the handler would have written, without building a
``LogRecord`` (that costs ~40 us a request under uvicorn). With any other logging set-up (a handler
or filter added on the way, tests capturing logs) it goes through ``logging`` as usual.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True


class AccessLog:
    """Writes one JSON line per request (``msg`` ``request``) for the ``switchyard.access`` logger."""

    __slots__ = ("logger", "_second", "_prefix")

    def __init__(self, name: str = "switchyard.access") -> None:
        self.logger = logging.getLogger(name)
        self._second = -1
        self._prefix = ""

    def write(self, fields: dict[str, Any]) -> None:
        logger = self.logger
        if not logger.isEnabledFor(logging.INFO):
            return
        handler = _direct_handler(logger)
        if handler is None:
            logger.info("request", extra=fields)
            return
        now = time.time()
        entry = {"ts": self._timestamp(now), "level": "info", "logger": logger.name, "msg": "request", **fields}
        line = orjson.dumps(entry, default=str).decode() + handler.terminator
        handler.acquire()
        try:
            handler.stream.write(line)
            handler.flush()
        except Exception:
            handler.handleError(logger.makeRecord(logger.name, logging.INFO, __file__, 0, "request", (), None))
        finally:
            handler.release()

    def _timestamp(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((now - second) * 1000):03d}Z"


def _direct_handler(logger: logging.Logger) -> logging.StreamHandler | None:
    """The root's JSON stream handler when nothing between ``logger`` and it would see the record."""
    node: logging.Logger | None = logger
    while node is not None and node.parent is not None:  # up to, not including, the root
        if node.handlers or node.filters or node.disabled or not node.propagate:
            return None
        node = node.parent
    if node is None or node.filters or len(node.handlers) != 1:
        return None
    handler = node.handlers[0]
    if (type(handler) is not logging.StreamHandler or type(handler.formatter) is not JSONFormatter
            or handler.filters or handler.level > logging.INFO):
        return None
    return handler


log = logging.getLogger("switchyard")
