"""Logging: structured events to stderr, JSON lines by default, readable on a terminal.

stdout belongs to the MCP stdio stream, so nothing here ever writes to it. Every event passes
through a redaction step that replaces any configured secret with ``***``, wherever it
appears (event text, fields, tracebacks). Context such as ``request_id`` and ``core`` is
carried per task with :func:`bound_context` (structlog contextvars, which trio copies into
each new task).
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Iterable, MutableMapping
from types import TracebackType
from typing import Any, TextIO

import structlog

__all__ = ["HotLogger", "bound_context", "configure_logging", "get_logger"]

_secrets: tuple[str, ...] = ()
_REDACTED = "***"


def _redact_text(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, _REDACTED)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return _redact_text(value)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(v) for v in value)
    if isinstance(value, BaseException):
        return _redact_text(f"{type(value).__name__}: {value}")
    return value


def redact_secrets(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> Any:
    """structlog processor: no configured secret survives in any field."""
    if not _secrets:
        return event_dict
    return {k: _redact_value(v) for k, v in event_dict.items()}


def configure_logging(
    level: str = "info",
    fmt: str = "auto",
    *,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Send structlog and stdlib logging to ``stream`` (stderr), redacting ``secrets``."""
    global _secrets
    _secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))
    stream = sys.stderr if stream is None else stream
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False)
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    finish: list[Any] = [
        structlog.processors.format_exc_info,
        redact_secrets,  # again: format_exc_info has just turned tracebacks into text
        renderer,
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *finish],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    numeric = getattr(logging, level.upper(), logging.INFO)
    root.setLevel(numeric)
    # structlog's own events are rendered by structlog and written straight to the stream
    # (under the handler's lock), not routed through stdlib logging: a tenth of the cost
    # per line. Loggers are not cached on first use, so a later configure_logging() and
    # structlog.testing.capture_logs() still reach every module-level logger.
    structlog.configure(
        processors=[*shared, structlog.processors.StackInfoRenderer(), *finish],
        logger_factory=functools.partial(_StreamLogger, handler),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=False,
    )


class _StreamLogger:
    """structlog's final logger: one rendered line onto the handler's stream."""

    def __init__(self, handler: logging.StreamHandler[TextIO], name: str | None = None) -> None:
        self._handler = handler
        self.name = name  # for add_logger_name

    def msg(self, message: str) -> None:
        handler = self._handler
        handler.acquire()
        try:
            handler.stream.write(message + "\n")
            handler.stream.flush()
        finally:
            handler.release()

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)


class HotLogger:
    """A module-level logger for code run on every call: bound once per configuration.

    structlog's module-level proxy assembles a bound logger on every event (loggers are
    not cached on first use: see :func:`configure_logging`), about 14 us even for an event
    the level filters out. This one keeps the logger it bound while structlog's wrapper
    class, logger factory and processor list stay the same objects, and binds again after
    a ``structlog.configure()`` that replaced one (``capture_logs()`` edits the processor
    list in place, which bound loggers see).
    """

    __slots__ = ("_bound", "_key", "_proxy")

    def __init__(self, name: str) -> None:
        self._proxy = structlog.get_logger(name)
        self._key: tuple[int, int, int] | None = None
        self._bound: Any = None

    def _logger(self) -> Any:
        config = structlog.get_config()
        key = (
            id(config["wrapper_class"]),
            id(config["logger_factory"]),
            id(config["processors"]),
        )
        if key != self._key:
            self._bound = self._proxy.bind()
            self._key = key
        return self._bound

    def debug(self, event: str, **fields: Any) -> None:
        self._logger().debug(event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        self._logger().info(event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._logger().warning(event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self._logger().error(event, **fields)

    def exception(self, event: str, **fields: Any) -> None:
        self._logger().exception(event, **fields)


class bound_context:  # lower case: it replaced a function of that name
    """Key-value context (``request_id=``, ``core=``) on every log line inside the block.

    As ``structlog.contextvars.bound_contextvars``, without its generator and its copy of
    every context variable: the block's values are set, and reset to what they were.
    """

    __slots__ = ("_tokens", "_values")

    def __init__(self, **values: Any) -> None:
        self._values = values
        self._tokens: Any = None

    def __enter__(self) -> None:
        self._tokens = structlog.contextvars.bind_contextvars(**self._values)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        structlog.contextvars.reset_contextvars(**self._tokens)
