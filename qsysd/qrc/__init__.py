"""The QRC protocol layer: sans-IO codec and typed messages (and, above them, the connection)."""

from qsysd.qrc._channels import (
    ChannelStringError as ChannelStringError,
    parse_channels as parse_channels,
)
from qsysd.qrc._connection import (
    ConnectionStatistics as ConnectionStatistics,
    NotificationHandler as NotificationHandler,
    QrcConnection as QrcConnection,
    open_qrc_connection as open_qrc_connection,
)
from qsysd.qrc._framing import (
    DEFAULT_MAX_FRAME_SIZE as DEFAULT_MAX_FRAME_SIZE,
    FrameDecoder as FrameDecoder,
    RecordSplitter as RecordSplitter,
    decode_frame as decode_frame,
    encode_frame as encode_frame,
    encode_text as encode_text,
    paused_collection as paused_collection,
)
from qsysd.qrc._messages import (
    ErrorResponse as ErrorResponse,
    JsonId as JsonId,
    Message as Message,
    Notification as Notification,
    Request as Request,
    Response as Response,
)
from qsysd.qrc._transport import (
    TcpTransport as TcpTransport,
    Transport as Transport,
    WebSocketTransport as WebSocketTransport,
    describe_os_error as describe_os_error,
    open_transport as open_transport,
)

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "ChannelStringError",
    "ConnectionStatistics",
    "ErrorResponse",
    "FrameDecoder",
    "JsonId",
    "Message",
    "Notification",
    "NotificationHandler",
    "QrcConnection",
    "RecordSplitter",
    "Request",
    "Response",
    "TcpTransport",
    "Transport",
    "WebSocketTransport",
    "decode_frame",
    "describe_os_error",
    "encode_frame",
    "encode_text",
    "open_qrc_connection",
    "open_transport",
    "parse_channels",
    "paused_collection",
]
