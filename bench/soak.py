"""``python -m bench.soak``: many clients mixing reads and writes on a large design, for long.

One daemon (``qsysd serve --stdio`` with HTTP on) on the emulator serving a generated design,
each in its own process. ``--clients K`` clients run at once: one on stdio, the others
alternating MCP over HTTP (``/mcp``, both protocol eras) and REST. Each loops over a mix
of cached and fresh reads, writes to gains it alone owns, listings, searches and, on
purpose, writes to a protected component (which the policy must refuse). At the end every
acknowledged write is looked up on the emulator over raw QRC: the last value each client
wrote must be what the Core holds.

Printed: throughput, calls and errors by kind, refusals, writes accounted for, and the
daemon's RSS over time (from /proc). ``tests/reliability/test_soak.py`` runs the short form.

    python -m bench.soak --minutes 30 --clients 16 --components 2000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio
from mcp import Client, StdioServerParameters, types
from mcp.client.stdio import stdio_client

from bench._procs import Emulator, daemon_argv, emulator, memory_kib, raw_qrc
from qsysd.emulator import generate_design

#: Each call's deadline: far above any answer; a call past it is a hang, counted as an error.
CALL_TIMEOUT = 30.0
#: How often the daemon's RSS is sampled.
SAMPLE_EVERY = 0.5
GAINS_PER_CLIENT = 12


@attrs.define
class SoakReport:
    """What a soak did and saw."""

    seconds: float
    clients: int
    components: int
    calls: dict[str, int] = attrs.field(factory=dict)
    #: unintended errors, by kind, and the first few of them in words
    errors: dict[str, int] = attrs.field(factory=dict)
    error_samples: list[str] = attrs.field(factory=list)
    #: writes to the protected component, refused as they must be
    refusals: int = 0
    writes_acknowledged: int = 0
    #: (control, last value written, value on the Core) where they differ
    mismatches: list[tuple[str, float, float]] = attrs.field(factory=list)
    controls_checked: int = 0
    #: (seconds since start, RSS KiB) of the daemon
    rss: list[tuple[float, int]] = attrs.field(factory=list)

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    def rss_growth_kib(self, warmup: float) -> int:
        """RSS at the end minus the lowest RSS after the first ``warmup`` fraction of the run."""
        after = [kib for t, kib in self.rss if t >= self.seconds * warmup]
        return after[-1] - min(after) if after else 0

    def error(self, kind: str, text: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        if len(self.error_samples) < 20:
            self.error_samples.append(f"{kind}: {text[:300]}")


@attrs.define
class Workload:
    """The design's names the clients use, and who owns which gains."""

    gains: list[str]  # "Component.gain" of every gain component, the protected one excluded
    protected: str  # a gain component the policy protects
    areas: list[str]
    components: list[str]

    @classmethod
    def for_design(cls, n_components: int) -> Workload:
        design = generate_design(n_components)
        gain_components = [c.name for c in design.components if c.type == "gain"]
        protected, *writable = gain_components
        return cls(
            gains=[f"{name}.gain" for name in writable],
            protected=protected,
            areas=sorted({c.name.split("_")[0] for c in design.components}),
            components=[c.name for c in design.components],
        )

    def owned(self, client: int, clients: int) -> list[str]:
        return self.gains[client::clients][:GAINS_PER_CLIENT]


def write_config(folder: Path, emu: Emulator, workload: Workload) -> Path:
    budgets = "".join(
        f'{name} = "off"\n'
        for name in (
            "rate_limit_reads",
            "rate_limit_writes",
            "rate_limit_address_reads",
            "rate_limit_address_writes",
        )
    )
    path = folder / "soak.toml"
    path.write_text(
        f'[[cores]]\nname = "soak"\nhost = "{emu.host}"\nport = {emu.port}\n'
        # snapshots often, so the warm-up already holds the memory a snapshot takes
        f'[state]\ndir = "{folder / "state"}"\nsnapshot_interval = 3.0\n'
        # the step limit is not what a soak is about: clients write anywhere in range
        f'[policy]\nprotected = ["{workload.protected}.*"]\nmax_gain_step_db = 120.0\n'
        f'[auth]\nmode = "none"\n{budgets}'
        '[http]\nenabled = true\nlisten = "127.0.0.1:0"\n'
        '[logging]\nformat = "json"\nlevel = "info"\n'
    )
    return path


def daemon_pid(config: Path) -> int:
    """The pid of our child ``qsysd serve`` for ``config`` (the SDK's client does not say)."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == me and str(config).encode() in cmdline:
            return int(entry.name)
    raise LookupError(f"no child process serves {config}")


async def listening_url(log_path: Path) -> str:
    while True:
        for line in (await trio.Path(log_path).read_text()).splitlines():
            if '"http.listening"' in line:
                return str(json.loads(line)["urls"][0]).rstrip("/")
        await trio.sleep(0.05)  # the daemon writes its log to this file


Call = Callable[[str, dict[str, Any]], Awaitable[tuple[bool, str, Any]]]


def mcp_caller(client: Client) -> Call:
    async def call(tool: str, arguments: dict[str, Any]) -> tuple[bool, str, Any]:
        result = await client.call_tool(tool, arguments)
        text = " ".join(b.text for b in result.content if isinstance(b, types.TextContent))
        return result.is_error, text, result.structured_content

    return call


def rest_caller(http: httpx.AsyncClient, base: str) -> Call:
    async def call(tool: str, arguments: dict[str, Any]) -> tuple[bool, str, Any]:
        response = await http.post(f"{base}/api/v1/tools/{tool}", json=arguments)
        body = response.json()
        if response.status_code == 200:
            return False, "", body
        return True, f"{response.status_code} {body.get('detail', body)}", None

    return call


async def client_loop(
    index: int,
    call: Call,
    workload: Workload,
    clients: int,
    deadline: float,
    report: SoakReport,
    written: dict[str, float],
) -> None:
    """One client's mix until ``deadline`` (trio time)."""
    rng = random.Random(index)
    owned = workload.owned(index, clients)
    while trio.current_time() < deadline:
        kind = rng.choices(
            ["get", "get_fresh", "set", "protected", "list", "find"], [40, 10, 30, 5, 10, 5]
        )[0]
        if kind == "get":
            arguments: dict[str, Any] = {"controls": rng.sample(workload.gains, rng.randint(1, 5))}
            tool = "qsys_get"
        elif kind == "get_fresh":
            arguments = {"controls": [rng.choice(workload.gains)], "fresh": True}
            tool = "qsys_get"
        elif kind == "set":
            changes = {c: round(rng.uniform(-60.0, -1.0), 1) for c in rng.sample(owned, 2)}
            arguments = {"changes": [{"control": c, "value": v} for c, v in changes.items()]}
            tool = "qsys_set"
        elif kind == "protected":
            arguments = {"changes": [{"control": f"{workload.protected}.gain", "value": -30}]}
            tool = "qsys_set"
        elif kind == "list":
            arguments = {"offset": rng.randrange(len(workload.components)), "limit": 50}
            tool = "qsys_list_components"
        else:
            arguments = {"query": f"{rng.choice(workload.areas)} gain"}
            tool = "qsys_find_controls"
        report.calls[kind] = report.calls.get(kind, 0) + 1
        try:
            with trio.fail_after(CALL_TIMEOUT):
                failed, text, data = await call(tool, arguments)
        except trio.TooSlowError:
            report.error(kind, f"no answer within {CALL_TIMEOUT:g} s")
            continue
        except Exception as exc:  # counted and shown: the soak reports, it does not stop
            report.error(kind, f"{type(exc).__name__}: {exc}")
            continue
        if kind == "protected":
            if failed and "protected" in text:
                report.refusals += 1
            else:
                report.error(kind, f"a write to a protected control was not refused: {text}")
            continue
        if failed:
            report.error(kind, text)
            continue
        if kind == "set":
            # each write is reported on its own; only acknowledged ones count as written
            for result in data["results"]:
                if result.get("ok"):
                    written[result["control"]] = changes[result["control"]]
                    report.writes_acknowledged += 1
                else:
                    report.error(kind, f"write not done: {result}")


async def sample_rss(pid: int, start: float, report: SoakReport) -> None:
    while True:
        try:
            report.rss.append((trio.current_time() - start, memory_kib(pid)["VmRSS"]))
        except (OSError, KeyError):
            return  # the daemon is gone; the clients will say so
        await trio.sleep(SAMPLE_EVERY)


async def check_writes(emu: Emulator, written: dict[str, float], report: SoakReport) -> None:
    """Every control's last acknowledged value, read back from the Core over raw QRC."""
    async with raw_qrc(emu) as qrc:
        for control, value in sorted(written.items()):
            component, _, name = control.rpartition(".")
            result = await qrc.call(
                "Component.Get", {"Name": component, "Controls": [{"Name": name}]}
            )
            held = float(result["Controls"][0]["Value"])
            report.controls_checked += 1
            if abs(held - value) > 0.01:
                report.mismatches.append((control, value, held))


async def run_soak(*, seconds: float, clients: int, components: int, folder: Path) -> SoakReport:
    """Run the soak for ``seconds`` with ``clients`` clients on a design of ``components``."""
    workload = Workload.for_design(components)
    report = SoakReport(seconds=seconds, clients=clients, components=components)
    async with emulator(components) as emu:
        config = write_config(folder, emu, workload)
        argv = daemon_argv(config)
        params = StdioServerParameters(command=argv[0], args=argv[1:], env=dict(os.environ))
        log_path = folder / "daemon.log"
        with log_path.open("w") as errlog:
            async with Client(stdio_client(params, errlog=errlog)) as stdio:
                with trio.fail_after(120):  # discovery of a large design takes a while
                    base = await listening_url(log_path)
                    await stdio.call_tool("qsys_status", {})
                pid = daemon_pid(config)
                written: dict[str, float] = {}  # control -> last acknowledged value
                async with httpx.AsyncClient(timeout=CALL_TIMEOUT) as http:
                    await _run_clients(stdio, http, base, pid, workload, report, written)
        await check_writes(emu, written, report)
    return report


async def _run_clients(
    stdio: Client,
    http: httpx.AsyncClient,
    base: str,
    pid: int,
    workload: Workload,
    report: SoakReport,
    written: dict[str, float],
) -> None:
    start = trio.current_time()
    deadline = start + report.seconds
    callers: list[Call] = [mcp_caller(stdio)]
    mcp_clients: list[Client] = []
    for index in range(1, report.clients):
        if index % 2:
            client = Client(f"{base}/mcp", mode="legacy" if index % 4 == 1 else "auto")
            mcp_clients.append(client)
            callers.append(mcp_caller(client))
        else:
            callers.append(rest_caller(http, base))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sample_rss, pid, start, report)
        async with contextlib.AsyncExitStack() as stack:
            for client in mcp_clients:
                await stack.enter_async_context(client)
            async with trio.open_nursery() as workers:
                for index, call in enumerate(callers):
                    workers.start_soon(
                        client_loop,
                        index,
                        call,
                        workload,
                        report.clients,
                        deadline,
                        report,
                        written,
                    )
        nursery.cancel_scope.cancel()


def render(report: SoakReport) -> str:
    total = report.total_calls
    lines = [
        f"soak: {report.clients} clients, {report.components} components, {report.seconds:g} s",
        f"calls: {total} ({total / report.seconds:.0f}/s): "
        + ", ".join(f"{k} {v}" for k, v in sorted(report.calls.items())),
        f"intended refusals (protected writes): {report.refusals}",
        f"unintended errors: {sum(report.errors.values())} "
        + (json.dumps(report.errors) if report.errors else ""),
        *(f"  {sample}" for sample in report.error_samples),
        f"writes acknowledged: {report.writes_acknowledged}; controls checked on the Core: "
        f"{report.controls_checked}; mismatches: {len(report.mismatches)}",
        *(f"  {c}: wrote {w}, Core holds {h}" for c, w, h in report.mismatches[:20]),
        "daemon RSS (MiB) over time:",
    ]
    step = max(1, len(report.rss) // 20)
    lines += [f"  {t:7.1f} s  {kib / 1024:7.1f}" for t, kib in report.rss[::step]]
    lines.append(f"RSS growth after the first third: {report.rss_growth_kib(1 / 3) / 1024:.1f} MiB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--minutes", type=float, default=5.0, help="how long (default 5)")
    parser.add_argument("--clients", type=int, default=12, help="clients at once (default 12)")
    parser.add_argument(
        "--components", type=int, default=1000, help="generated design size (default 1000)"
    )
    args = parser.parse_args(argv)
    if args.clients < 1 or args.minutes <= 0 or args.components < 2:
        parser.error("need --clients >= 1, --minutes > 0 and --components >= 2")
    with tempfile.TemporaryDirectory(prefix="qsysd-soak-") as folder:
        report = trio.run(
            lambda: run_soak(
                seconds=args.minutes * 60,
                clients=args.clients,
                components=args.components,
                folder=Path(folder),
            )
        )
    print(render(report))
    return 1 if report.errors or report.mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
