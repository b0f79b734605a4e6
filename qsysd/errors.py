"""The one exception tree of qsysd.

Every error qsysd raises on purpose derives from :class:`QsysdError`::

    QsysdError
    ├── ConfigError                 the configuration is invalid (all problems, with paths)
    │   └── DesignError             an emulator design file is invalid
    ├── StartupError                the daemon cannot start (state folder, journal, port)
    ├── StateUnavailable            the snapshot store (Redis) cannot be reached or used
    ├── ProtocolError               bytes from a peer are not valid QRC
    │   ├── FrameTooLarge           a frame grew past the size limit
    │   ├── InvalidFrame            not UTF-8, not JSON, or not a JSON-RPC object
    │   └── InvalidReply            a JSON-RPC reply or push whose content is not what QRC says
    ├── CoreError                   talking to a Core failed
    │   ├── TransportError          the socket failed (refused, reset, closed)
    │   ├── RequestTimeout          the Core did not answer before the deadline
    │   ├── CoreUnavailable         not connected, or the circuit breaker is open
    │   └── QrcError                the Core answered with a JSON-RPC error
    │       ├── ParseError (-32700), InvalidRequest (-32600), MethodNotFound (-32601),
    │       ├── InvalidParams (-32602), ServerError (-32603), CoreOnStandby (-32604),
    │       ├── InvalidPageRequestId (2), BadPageRequest (3), MissingFile (4),
    │       ├── ChangeGroupsExhausted (5), UnknownChangeGroup (6),
    │       ├── UnknownComponent (7), UnknownControl (8), IllegalMixerChannel (9),
    │       └── LogonRequired (10)
    ├── LookupFailed                a Core, component, control, tool or prompt name is unknown
    ├── PolicyViolation             a write was refused by the safety policy
    ├── AuthenticationFailed        no credentials, or credentials that are not valid (401)
    ├── PermissionDenied            the caller's role lacks the permission a tool needs
    ├── RateLimited                 the caller spent its budget of calls (429, retry later)
    ├── WriteFailed                 no control of a write was written (``results`` says why)
    └── ToolInputError              a tool's arguments are invalid

:func:`qrc_error` maps a QRC error code to its class, once, for the client and the emulator.
:func:`describe` renders any exception, once, for every door: the message an agent or a
person reads, a stable problem type, an HTTP status and whether a retry may help.
Messages say what happened, to what, and what the reader can do.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Sequence
from typing import Any, ClassVar

import attrs

__all__ = [
    "AuthenticationFailed",
    "BadPageRequest",
    "ChangeGroupsExhausted",
    "ConfigError",
    "CoreError",
    "CoreOnStandby",
    "CoreUnavailable",
    "DesignError",
    "ErrorReport",
    "FileNotWritable",
    "FrameTooLarge",
    "IllegalMixerChannel",
    "InvalidFrame",
    "InvalidPageRequestId",
    "InvalidParams",
    "InvalidReply",
    "InvalidRequest",
    "LogonRequired",
    "LookupFailed",
    "MethodNotFound",
    "MissingFile",
    "ParseError",
    "PermissionDenied",
    "PolicyViolation",
    "ProtocolError",
    "QrcError",
    "QsysdError",
    "RateLimited",
    "RequestTimeout",
    "ServerError",
    "StartupError",
    "StateUnavailable",
    "ToolInputError",
    "TransportError",
    "UnknownChangeGroup",
    "UnknownComponent",
    "UnknownControl",
    "WriteFailed",
    "describe",
    "describe_os_error",
    "problem_type",
    "qrc_error",
]


class QsysdError(Exception):
    """The root of every error qsysd raises on purpose."""


class ConfigError(QsysdError):
    """The configuration is invalid; ``problems`` lists each one with its path."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid configuration ({len(self.problems)} problem(s)):\n{lines}")


class DesignError(ConfigError):
    """A design file is invalid; ``problems`` lists each one with its JSON path."""


class StartupError(QsysdError):
    """The daemon cannot start; the message is one line saying what failed and what to do."""


class StateUnavailable(QsysdError):
    """The snapshot store (Redis) cannot be reached or used; snapshots are retried later."""


class ProtocolError(QsysdError):
    """Bytes from a peer are not valid QRC."""


class FrameTooLarge(ProtocolError):
    """A frame grew past the configured size limit before its terminator arrived."""


class InvalidFrame(ProtocolError):
    """A frame is not UTF-8, not JSON, or not a JSON-RPC 2.0 object."""


class InvalidReply(ProtocolError):
    """A well-formed JSON-RPC reply or push whose content is not what QRC specifies.

    Raised by the wire converters (``qsysd.core``) for a result or params of the wrong shape,
    e.g. a GetComponents result that is not a list; items inside a list that are malformed
    are skipped instead. The connection counts it like an invalid frame.
    """


class CoreError(QsysdError):
    """Talking to a Core failed. ``retryable`` says whether the same call may succeed later."""

    retryable: ClassVar[bool] = True


class TransportError(CoreError):
    """The connection to a Core failed (refused, reset, closed, TLS, WebSocket close)."""


class RequestTimeout(CoreError):
    """A Core did not answer a request before its deadline."""


class CoreUnavailable(CoreError):
    """A Core is not connected, or its circuit breaker is open: calls fail at once."""


class QrcError(CoreError):
    """A Core answered a request with a JSON-RPC error object."""

    code: ClassVar[int] = 0
    default_message: ClassVar[str] = "QRC error"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str | None = None, *, code: int | None = None) -> None:
        self.qrc_code = self.code if code is None else code
        self.qrc_message = message or self.default_message
        super().__init__(self.qrc_message)

    def __str__(self) -> str:
        return f"{self.qrc_message} (QRC error {self.qrc_code})"


class ParseError(QrcError):
    code = -32700
    default_message = "Parse error"


class InvalidRequest(QrcError):
    code = -32600
    default_message = "Invalid request"


class MethodNotFound(QrcError):
    code = -32601
    default_message = "Method not found"


class InvalidParams(QrcError):
    code = -32602
    default_message = "Invalid params"


class ServerError(QrcError):
    code = -32603
    default_message = "Server error"
    retryable = True


class CoreOnStandby(QrcError):
    code = -32604
    default_message = "Core is on Standby"
    retryable = True


class InvalidPageRequestId(QrcError):
    code = 2
    default_message = "Invalid Page Request ID"


class BadPageRequest(QrcError):
    code = 3
    default_message = "Bad Page Request"


class MissingFile(QrcError):
    code = 4
    default_message = "Missing file"


class ChangeGroupsExhausted(QrcError):
    code = 5
    default_message = "Change Groups exhausted"


class UnknownChangeGroup(QrcError):
    code = 6
    default_message = "Unknown change group"


class UnknownComponent(QrcError):
    code = 7
    default_message = "Unknown component name"


class UnknownControl(QrcError):
    code = 8
    default_message = "Unknown control"


class IllegalMixerChannel(QrcError):
    code = 9
    default_message = "Illegal mixer channel index"


class LogonRequired(QrcError):
    code = 10
    default_message = "Logon required"


_QRC_ERRORS: dict[int, type[QrcError]] = {
    cls.code: cls
    for cls in (
        ParseError,
        InvalidRequest,
        MethodNotFound,
        InvalidParams,
        ServerError,
        CoreOnStandby,
        InvalidPageRequestId,
        BadPageRequest,
        MissingFile,
        ChangeGroupsExhausted,
        UnknownChangeGroup,
        UnknownComponent,
        UnknownControl,
        IllegalMixerChannel,
        LogonRequired,
    )
}


def qrc_error(code: int, message: str | None = None) -> QrcError:
    """The exception for a QRC error code; an unknown code gives a plain :class:`QrcError`."""
    cls = _QRC_ERRORS.get(code)
    if cls is None:
        return QrcError(message, code=code)
    return cls(message)


def describe_os_error(exc: OSError) -> str:
    """An OS error in words, with the file it concerns: the one mapping used at start-up."""
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno == errno.EADDRINUSE:
        return f"address already in use{where}: another process listens there"
    if isinstance(exc, PermissionError):
        return f"permission denied{where}"
    if exc.strerror:
        return f"{exc.strerror}{where}"
    return str(exc) or type(exc).__name__


class LookupFailed(QsysdError):
    """A name is unknown; ``suggestions`` holds the closest known names.

    ``hint`` says where the right names are listed; None means a component or control
    (the find and list tools), "" means no hint.
    """

    def __init__(
        self, message: str, suggestions: list[str] | None = None, *, hint: str | None = None
    ) -> None:
        self.suggestions = list(suggestions or [])
        self.hint = hint
        if self.suggestions:
            message = f"{message}; did you mean: {', '.join(self.suggestions)}?"
        super().__init__(message)


class PolicyViolation(QsysdError):
    """A write was refused by the safety policy; ``rule`` names the rule."""

    def __init__(self, rule: str, message: str) -> None:
        self.rule = rule
        super().__init__(f"refused by policy {rule!r}: {message}")


class ToolInputError(QsysdError):
    """A tool's arguments are invalid."""


class AuthenticationFailed(QsysdError):
    """The request carries no credentials, or credentials that are not valid.

    ``error`` is the RFC 6750 error code for ``WWW-Authenticate`` (``invalid_token``), or
    None when no credentials were sent at all (the challenge then carries no error).
    The message never contains the credentials.
    """

    def __init__(self, message: str, *, error: str | None = "invalid_token") -> None:
        self.error = error
        super().__init__(message)


class PermissionDenied(QsysdError):
    """The caller's role lacks the permission a tool needs."""


class RateLimited(QsysdError):
    """The caller spent its budget of calls; ``retry_after`` says in how many seconds to retry.

    ``budget`` names the budget (``write``, ``read``, ``failed-authentication``).
    """

    retryable = True

    def __init__(self, budget: str, limit: str, retry_after: int) -> None:
        self.budget = budget
        self.retry_after = max(1, retry_after)
        super().__init__(
            f"rate limit of {limit} for {budget} calls reached; retry in {self.retry_after} s"
        )


class FileNotWritable(QsysdError):
    """A file qsysd changes on request is read-only here; the message names it and what to do."""


class WriteFailed(QsysdError):
    """No control of a write was written; ``results`` (per-control results) says why."""

    def __init__(self, results: Sequence[Any]) -> None:
        self.results = tuple(results)
        self.retryable = any(r.retryable for r in self.results)
        lines = "; ".join(f"{r.control}: {r.error}" for r in self.results)
        hint = " The same call may succeed later." if self.retryable else ""
        # After a timeout nobody knows whether the Core applied it: never say "nothing".
        head = (
            "no write was confirmed by the Core"
            if any(r.uncertain for r in self.results)
            else "nothing was written"
        )
        end = "" if lines.endswith((".", "?", "!")) else "."
        super().__init__(f"{head}. {lines}{end}{hint}")


# Rendering, once for every door ----------------------------------------------------------------

#: Problem types are URNs: stable identifiers, documented in docs/http-api.md.
PROBLEM_PREFIX = "urn:qsysd:problem:"

_LOOKUP_HINT = "Use qsys_find_controls or qsys_list_components to find the right name."


@attrs.frozen
class ErrorReport:
    """One exception rendered for a caller: the same words on every door.

    ``type`` is a stable problem type (RFC 9457), ``title`` its short summary, ``status`` the
    HTTP status, ``detail`` the message (what happened, to what, what to do), ``retryable``
    whether the same call may succeed later, ``internal`` whether it is a bug, not an answer.
    """

    type: str
    title: str
    status: int
    detail: str
    retryable: bool
    internal: bool = False


def _slug(cls: type[BaseException]) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", cls.__name__).lower()


def problem_type(cls: type[BaseException]) -> str:
    """The stable problem type of an exception class (``urn:qsysd:problem:core-unavailable``)."""
    return PROBLEM_PREFIX + _slug(cls)


def _status(exc: QsysdError) -> int:
    if isinstance(exc, ToolInputError):
        return 422
    if isinstance(exc, LookupFailed):
        return 404
    if isinstance(exc, AuthenticationFailed):
        return 401
    if isinstance(exc, RateLimited):
        return 429
    if isinstance(exc, PermissionDenied | PolicyViolation):
        return 403
    if isinstance(exc, WriteFailed | FileNotWritable):
        return 409
    if isinstance(exc, CoreUnavailable | StateUnavailable):
        return 503
    if isinstance(exc, RequestTimeout):
        return 504
    if isinstance(exc, CoreError | ProtocolError):
        return 502
    return 500


def _core_detail(exc: CoreError, core: str | None, writing: bool) -> str:
    text = str(exc) or type(exc).__name__
    where = f'Core "{core}"' if core else "the Core"
    if core and f'"{core}"' not in text:
        text = f"{where}: {text}"
    if isinstance(exc, RequestTimeout):
        if writing:
            return f"{text}; the write may or may not have been applied: read it before retrying"
        return f"{text}; nothing was changed, and the same read may succeed later"
    if isinstance(exc, QrcError):
        return f"{where} refused the request: {text}; do not retry unchanged"
    return f"{text}; {'retry later' if exc.retryable else 'do not retry unchanged'}"


def describe(
    exc: BaseException,
    *,
    tool: str | None = None,
    core: str | None = None,
    writing: bool = False,
) -> ErrorReport:
    """Render ``exc`` for a caller, the one mapping from exceptions to messages.

    ``tool`` is the tool that failed (adds what to do next), ``core`` the Core the call went
    to (named when the message does not name it yet), ``writing`` whether the call was a
    write (a timeout then may have been applied).
    """
    if not isinstance(exc, QsysdError):
        where = f" in {tool}" if tool else ""
        return ErrorReport(
            type=PROBLEM_PREFIX + "internal-error",
            title="Internal error",
            status=500,
            detail=f"internal error{where}: {type(exc).__name__}: {exc}. This is a bug in qsysd "
            "or a plugin; the request was not completed.",
            retryable=False,
            internal=True,
        )
    detail = str(exc)
    if isinstance(exc, CoreError):
        detail = _core_detail(exc, core, writing)
        if tool:
            detail += ". qsys_status shows the Core's state."
    elif isinstance(exc, LookupFailed):
        hint = exc.hint if exc.hint is not None else _LOOKUP_HINT
        if hint:
            detail = f"{detail}. {hint}"
    elif isinstance(exc, ToolInputError) and tool:
        detail = f"{detail}. See the inputSchema of {tool}."
    cls = type(exc)
    if isinstance(exc, QrcError):
        doc = exc.default_message
    else:
        # The docstring's first clause: "No control of a write was written".
        first = (cls.__doc__ or cls.__name__).strip().splitlines()[0]
        doc = re.split(r"; |\. |:", first)[0].rstrip(".").replace("``", "")
    return ErrorReport(
        type=problem_type(cls),
        title=doc,
        status=_status(exc),
        detail=detail,
        retryable=bool(getattr(exc, "retryable", False)),
    )
