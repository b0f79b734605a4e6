"""The QRC protocol layer: sans-IO codec and typed messages (and, above them, the connection)."""

from qsysd.qrc._framing import (
    DEFAULT_MAX_FRAME_SIZE as DEFAULT_MAX_FRAME_SIZE,
    FrameDecoder as FrameDecoder,
    decode_frame as decode_frame,
    encode_frame as encode_frame,
    encode_text as encode_text,
)
from qsysd.qrc._messages import (
    ErrorResponse as ErrorResponse,
    JsonId as JsonId,
    Message as Message,
    Notification as Notification,
    Request as Request,
    Response as Response,
)

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "ErrorResponse",
    "FrameDecoder",
    "JsonId",
    "Message",
    "Notification",
    "Request",
    "Response",
    "decode_frame",
    "encode_frame",
    "encode_text",
]
