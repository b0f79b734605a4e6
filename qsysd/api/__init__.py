"""The facade tools use: reads from the StateStore, policy-checked and journaled writes.

:class:`QsysApi` is the entry point; the rest are the values it takes and returns.
"""

from qsysd.api._facade import QsysApi as QsysApi
from qsysd.api._mixer import parse_channels as parse_channels
from qsysd.api._reads import CoreLinkLike as CoreLinkLike
from qsysd.api._results import (
    ComponentPage as ComponentPage,
    ControlChange as ControlChange,
    ControlResult as ControlResult,
    Match as Match,
    MixerOutcome as MixerOutcome,
    ReadResult as ReadResult,
    SetOutcome as SetOutcome,
    SnapshotOutcome as SnapshotOutcome,
    Summary as Summary,
    WriteFailed as WriteFailed,
    ZoneSummary as ZoneSummary,
    describe_error as describe_error,
)

__all__ = [
    "ComponentPage",
    "ControlChange",
    "ControlResult",
    "CoreLinkLike",
    "Match",
    "MixerOutcome",
    "QsysApi",
    "ReadResult",
    "SetOutcome",
    "SnapshotOutcome",
    "Summary",
    "WriteFailed",
    "ZoneSummary",
    "describe_error",
    "parse_channels",
]
