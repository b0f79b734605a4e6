"""The daemon SIGKILLed at random moments while it writes snapshots and the journal.

``qsysd serve`` (file state backend, journal on, a snapshot every 50 ms) runs as a subprocess
against an emulated Core, with four REST clients writing all the time; after a random delay it
is killed with SIGKILL, ``KILLS`` times over one state folder. After every kill, before the
next start: the snapshot file decodes (none set aside as corrupt), the journal passes SQLite's
``integrity_check``, and it holds every write acknowledged so far (answered 200 with
``ok: true`` before the kill). Every restart then serves again from that folder, and the
temporary files of saves a kill cut short are gone once the daemon has started again.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import trio
from _record import ReliabilityRecord

from qsysd.emulator import EmulatorServer, serve_emulator
from qsysd.state import FileStateBackend

KILLS = 20
WRITERS = 4
GAINS = ["Lobby_BGM", "Restaurant", "Bar", "Terrace", "Boardroom", "Ballroom"]
START_WAIT = 30.0


def write_config(folder: Path, emulator: EmulatorServer) -> Path:
    path = folder / "qsysd.toml"
    path.write_text(
        f'[[cores]]\nname = "venue"\nhost = "127.0.0.1"\nport = {emulator.tcp_port}\n'
        f'[state]\ndir = "{folder / "state"}"\nsnapshot_interval = 0.05\njournal = true\n'
        "[policy]\nmax_gain_step_db = 120.0\n"
        '[http]\nenabled = true\nlisten = "127.0.0.1:0"\n'
        '[auth]\nmode = "none"\n'  # crashes are the subject here; loopback only
        '[logging]\nformat = "json"\nlevel = "info"\n'
    )
    return path


async def serve(config: Path, log: Path) -> trio.Process:
    """``qsysd serve --config CONFIG``, its log (JSON lines) into ``log``."""
    with log.open("w") as errors:
        return await trio.lowlevel.open_process(
            [sys.executable, "-m", "qsysd", "serve", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            env=dict(os.environ, QSYSD_LOAD_PLUGINS=""),
        )


async def base_url(log: Path, process: trio.Process) -> str:
    """The HTTP URL once the daemon says it is ready (its Core connected)."""
    url = None
    while True:
        for line in (await trio.Path(log).read_text()).splitlines():
            record = json.loads(line) if line.startswith("{") else {}
            if record.get("event") == "http.listening":
                url = str(record["urls"][0]).rstrip("/")
            if record.get("event") == "daemon.ready" and url is not None:
                return url
        assert process.returncode is None, "the daemon exited before it was ready"
        await trio.sleep(0.02)  # the daemon writes its log to this file: no event to wait on


def journal_writes(path: Path) -> set[tuple[str, float]]:
    """(control, value) of every write the journal holds as done; checks integrity first."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        (check,) = db.execute("PRAGMA integrity_check").fetchone()
        assert check == "ok", f"journal corrupt after a kill: {check}"
        rows = db.execute(
            "SELECT component, control, after_value FROM journal "
            "WHERE kind = 'write' AND outcome = 'ok'"
        ).fetchall()
    db.close()
    return {(f"{c}.{n}", float(json.loads(v))) for c, n, v in rows}


class Writes:
    """Writers of unique (control, value) pairs; what was answered done is acknowledged."""

    def __init__(
        self, base: str, counter: Iterator[int], acknowledged: set[tuple[str, float]]
    ) -> None:
        self.base = base
        self.counter = counter
        self.acknowledged = acknowledged
        self.pending = 0

    async def run(self, client: httpx.AsyncClient) -> None:
        while True:
            n = next(self.counter)
            control = f"{GAINS[n % len(GAINS)]}.gain"
            value = -1.0 - (n // len(GAINS) % 190) * 0.5  # unique pairs, in range
            change = {"control": control, "value": value}
            self.pending += 1
            try:
                r = await client.post(
                    f"{self.base}/api/v1/tools/qsys_set", json={"changes": [change]}
                )
            except httpx.TransportError:
                return  # killed mid-call: not acknowledged
            finally:
                self.pending -= 1
            assert r.status_code == 200, r.text
            assert r.json()["results"][0]["ok"] is True
            self.acknowledged.add((control, value))


async def test_sigkill_during_writes_keeps_snapshot_and_journal_intact(
    tmp_path: Path, reliability: ReliabilityRecord
) -> None:
    rng = random.Random(12)
    acknowledged: set[tuple[str, float]] = set()
    counter = iter(range(10**6))
    cut_saves = 0  # kills that landed inside a snapshot save (its temp file left behind)
    in_flight_at_kill = 0
    state = tmp_path / "state"
    with trio.fail_after(KILLS * START_WAIT):
        async with serve_emulator() as emulator:
            config = write_config(tmp_path, emulator)
            for kill in range(KILLS):
                log = tmp_path / f"stderr-{kill}.log"
                process = await serve(config, log)
                try:
                    with trio.fail_after(START_WAIT):
                        base = await base_url(log, process)
                    writes = Writes(base, counter, acknowledged)

                    async with httpx.AsyncClient(timeout=10) as client, trio.open_nursery() as n:
                        for _ in range(WRITERS):
                            n.start_soon(writes.run, client)
                        await trio.sleep(rng.uniform(0.05, 0.6))
                        in_flight_at_kill += writes.pending > 0
                        process.send_signal(signal.SIGKILL)
                        await process.wait()
                finally:
                    if process.returncode is None:
                        process.kill()
                        await process.wait()
                assert process.returncode == -signal.SIGKILL
                # what survived the kill, read before the next start touches anything
                assert not list(state.glob("snapshot.json.corrupt-*"))
                snapshot = await FileStateBackend(state / "snapshot.json").load()
                assert snapshot is not None and snapshot.cores, "no valid snapshot after a kill"
                missing = acknowledged - journal_writes(state / "journal.sqlite3")
                assert not missing, f"acknowledged writes lost by kill {kill}: {sorted(missing)}"
                cut_saves += len(list(state.glob(".snapshot.json.*.tmp")))
            # and the daemon still starts and serves from the folder all those kills left
            log = tmp_path / "stderr-last.log"
            process = await serve(config, log)
            try:
                with trio.fail_after(START_WAIT):
                    base = await base_url(log, process)
                async with httpx.AsyncClient(timeout=10) as client:
                    r = await client.post(
                        f"{base}/api/v1/tools/qsys_history", json={"control": "Bar.gain"}
                    )
                    assert r.status_code == 200, r.text
            finally:
                process.terminate()
                await process.wait()
            assert not any('"level": "error"' in line for line in log.read_text().splitlines())
            leftovers = list(state.glob(".snapshot.json.*.tmp"))
            assert not leftovers, f"temporary snapshot files never removed: {leftovers}"
    reliability.record(
        area="crash safety",
        case="SIGKILL at a random moment (0.05-0.6 s) while 4 clients write and a snapshot "
        "is saved every 50 ms",
        door="rest",
        trials=KILLS,
        outcome=(
            f"every restart found a valid snapshot and an intact journal holding all "
            f"{len(acknowledged)} acknowledged writes; {in_flight_at_kill} kills landed with "
            f"a write in flight, {cut_saves} inside a snapshot save (its temporary file "
            "removed at the next start)"
        ),
        figures={
            "kills": KILLS,
            "acknowledged_writes": len(acknowledged),
            "lost_writes": 0,
            "kills_with_write_in_flight": in_flight_at_kill,
            "kills_inside_a_snapshot_save": cut_saves,
        },
    )
