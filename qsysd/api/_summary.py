"""The system summary: Cores, and every zone with its level."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from qsysd.api._results import Summary, ZoneSummary
from qsysd.state import CoreStatus, StateStore


def summarize(
    store: StateStore, cores: Sequence[str], statuses: Iterable[CoreStatus], *, max_zones: int
) -> Summary:
    """Summary of ``cores``; a zone is a component with both a ``gain`` and a ``mute``."""
    zones: list[ZoneSummary] = []
    n_components = n_controls = 0
    for name in cores:
        components = store.components(name)
        n_components += len(components)
        for comp in components:
            readings = {r.info.ref.name: r for r in store.controls(name, comp.name)}
            n_controls += len(readings)
            gain, mute = readings.get("gain"), readings.get("mute")
            if gain is None or mute is None:
                continue
            gv = gain.value
            gain_db = float(gv.value) if gv and isinstance(gv.value, int | float) else None
            muted = bool(mute.value.value) if mute.value else None
            zones.append(
                ZoneSummary(
                    core=name,
                    name=comp.name,
                    type=comp.type,
                    gain=gv.string if gv else None,
                    gain_db=round(gain_db, 2) if gain_db is not None else None,
                    muted=muted,
                    stale=gain.stale or mute.stale,
                )
            )
    chosen = tuple(s for s in statuses if s.core in cores)
    return Summary(chosen, tuple(zones[:max_zones]), len(zones), n_components, n_controls)
