"""The Core layer: one CoreLink per Core keeps it connected, discovered and subscribed."""

from qsysd.core._backoff import Backoff as Backoff
from qsysd.core._breaker import BreakerState as BreakerState, CircuitBreaker as CircuitBreaker
from qsysd.core._commands import (
    ChannelStringError as ChannelStringError,
    ControlWrite as ControlWrite,
    CoreCommands as CoreCommands,
    MixerTarget as MixerTarget,
    mixer_method as mixer_method,
    parse_channels as parse_channels,
)
from qsysd.core._discovery import (
    Discovery as Discovery,
    Requester as Requester,
    discover as discover,
)
from qsysd.core._link import CoreLink as CoreLink
from qsysd.core._stats import (
    LATENCY_BUCKETS as LATENCY_BUCKETS,
    CoreLinkStatistics as CoreLinkStatistics,
    RequestCounters as RequestCounters,
)
from qsysd.core._subscription import (
    Subscription as Subscription,
    SubscriptionPlan as SubscriptionPlan,
)
from qsysd.core._wire import (
    EngineStatus as EngineStatus,
    component_from_wire as component_from_wire,
    components_from_reply as components_from_reply,
    control_value_from_wire as control_value_from_wire,
    controls_from_reply as controls_from_reply,
    engine_status_from_wire as engine_status_from_wire,
    normalize_value as normalize_value,
    poll_from_wire as poll_from_wire,
    values_from_reply as values_from_reply,
)

__all__ = [
    "LATENCY_BUCKETS",
    "Backoff",
    "BreakerState",
    "ChannelStringError",
    "CircuitBreaker",
    "ControlWrite",
    "CoreCommands",
    "CoreLink",
    "CoreLinkStatistics",
    "Discovery",
    "EngineStatus",
    "MixerTarget",
    "RequestCounters",
    "Requester",
    "Subscription",
    "SubscriptionPlan",
    "component_from_wire",
    "components_from_reply",
    "control_value_from_wire",
    "controls_from_reply",
    "discover",
    "engine_status_from_wire",
    "mixer_method",
    "normalize_value",
    "parse_channels",
    "poll_from_wire",
    "values_from_reply",
]
