"""Typed QRC (JSON-RPC 2.0) messages, and their conversion from and to wire objects."""

from __future__ import annotations

from typing import Any, TypeAlias

import attrs

from qsysd.errors import InvalidFrame, QrcError, qrc_error

__all__ = [
    "ErrorResponse",
    "JsonId",
    "Message",
    "Notification",
    "Request",
    "Response",
    "from_wire",
    "to_wire",
]

#: Real Cores echo any id unchanged, strings included.
JsonId: TypeAlias = int | str | float | None


@attrs.frozen(slots=True)
class Request:
    """A call that expects an answer with the same ``id``."""

    method: str
    params: Any
    id: JsonId


@attrs.frozen(slots=True)
class Notification:
    """A message with no ``id``: EngineStatus, AutoPoll pushes, ..."""

    method: str
    params: Any = None


@attrs.frozen(slots=True)
class Response:
    """A successful answer to the request with the same ``id``."""

    id: JsonId
    result: Any


@attrs.frozen(slots=True)
class ErrorResponse:
    """A JSON-RPC error answer; ``id`` is None when the request could not be read."""

    id: JsonId
    code: int
    message: str

    def to_exception(self) -> QrcError:
        """The exception class for this error code, carrying the Core's own message."""
        return qrc_error(self.code, self.message)

    @classmethod
    def from_exception(cls, id: JsonId, exc: QrcError) -> ErrorResponse:
        return cls(id=id, code=exc.qrc_code, message=exc.qrc_message)


Message: TypeAlias = Request | Notification | Response | ErrorResponse

# isinstance() with a tuple: an ``A | B`` union is built anew at every call (4x slower)
_ID = (int, str, float)
_NUMBER = (int, float)
_VALID_JSONRPC = ("2.0", 2, 2.0)  # sloppy peers send the number 2


def from_wire(obj: object) -> Message:
    """Convert one decoded JSON value to a message, or raise :class:`InvalidFrame`."""
    if not isinstance(obj, dict):
        raise InvalidFrame(f"expected a JSON-RPC object, got {type(obj).__name__}")
    version = obj.get("jsonrpc", "2.0")
    if version not in _VALID_JSONRPC or isinstance(version, bool):
        raise InvalidFrame(f"unsupported jsonrpc version {version!r}")
    msg_id = obj.get("id")
    if msg_id is not None and (isinstance(msg_id, bool) or not isinstance(msg_id, _ID)):
        raise InvalidFrame(f"invalid id {msg_id!r}: expected a number or a string")
    method = obj.get("method")
    if method is not None:
        if not isinstance(method, str):
            raise InvalidFrame(f"invalid method {method!r}: expected a string")
        params = obj.get("params")
        if "id" in obj:
            return Request(method=method, params=params, id=msg_id)
        return Notification(method=method, params=params)
    if "error" in obj:
        error = obj["error"]
        if not isinstance(error, dict):
            raise InvalidFrame(f"invalid error member {error!r}: expected an object")
        code = error.get("code")
        if isinstance(code, bool) or not isinstance(code, _NUMBER) or int(code) != code:
            raise InvalidFrame(f"invalid error code {code!r}: expected an integer")
        message = error.get("message")
        return ErrorResponse(
            id=msg_id, code=int(code), message=message if isinstance(message, str) else ""
        )
    if "result" in obj:
        return Response(id=msg_id, result=obj["result"])
    raise InvalidFrame("a JSON-RPC object needs 'method', 'result' or 'error'")


def to_wire(message: Message) -> dict[str, Any]:
    """The JSON-RPC object for a message."""
    if isinstance(message, Request):
        out: dict[str, Any] = {"jsonrpc": "2.0", "method": message.method}
        if message.params is not None:
            out["params"] = message.params
        out["id"] = message.id
        return out
    if isinstance(message, Notification):
        out = {"jsonrpc": "2.0", "method": message.method}
        if message.params is not None:
            out["params"] = message.params
        return out
    if isinstance(message, Response):
        return {"jsonrpc": "2.0", "result": message.result, "id": message.id}
    return {
        "jsonrpc": "2.0",
        "id": message.id,
        "error": {"code": message.code, "message": message.message},
    }
