"""The audit row of a write says what that write did, even when the control moves right after.

Between the Core's answer to a write and its audit row, an AutoPoll push may report the
control changed again (another panel, another write): the row must keep this write's value.
"""

from __future__ import annotations

from pathlib import Path

import trio
from _stacks import core_config, running_link

from qsysd.api import ControlChange, QsysApi
from qsysd.config import PolicyConfig
from qsysd.emulator import EmulatorServer
from qsysd.policy import Policy
from qsysd.state import ControlRef, ControlValue, Journal, StateStore

BAR_GAIN = ControlRef("main", "Bar", "gain")
ELSEWHERE = ControlValue(BAR_GAIN, -99.0, "-99.0dB", 0.008)


async def another_panel(store: StateStore) -> None:
    """Reports the control moved again as soon as the store takes a write's echo."""
    async with store.watch([BAR_GAIN]) as watcher:
        async for batch in watcher:
            if any(v.value != ELSEWHERE.value for v in batch):
                store.apply([ELSEWHERE])


async def test_a_write_is_audited_with_the_cores_answer_not_a_later_value(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    store = StateStore()
    written = [-10.0 - n for n in range(5)]
    with trio.fail_after(20):
        async with (
            Journal.open(str(tmp_path / "journal.sqlite3")) as journal,
            running_link(core_config(emulator), store) as link,
            trio.open_nursery() as nursery,
        ):
            await link.wait_connected()
            policy = Policy(PolicyConfig(max_gain_step_db=None))
            api = QsysApi({"main": link}, store, policy, journal)
            nursery.start_soon(another_panel, store)
            for value in written:
                outcome = await api.set([ControlChange("Bar.gain", value=value)], principal="t")
                assert outcome.results[0].ok, outcome.results[0].error
            entries = await api.history(kind="write", control="Bar.gain", limit=100)
            nursery.cancel_scope.cancel()
    assert sorted(e.after for e in entries if e.outcome == "ok") == sorted(written)
