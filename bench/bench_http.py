"""Tool calls per second and p50/p99 latency over HTTP, 50 connections, with same-run baselines.

Every server runs in its own process, and so does every load generator:

- an emulated Core (``python -m qsysd emulate``, the demo design);
- ``python -m qsysd serve`` with ``[http]`` on 127.0.0.1 port 0 (the URL is read from its
  ``http.listening`` log line; its stderr is drained all along), twice: with authentication
  (an operator API token) and rate limits on, as deployed, and with ``auth.mode = "none"``
  and no limits; each qsysd row runs on both, one right after the other, so the cost of
  access control is measured in the same run under the same load;
- baseline A: a bare Quart-Trio route on Hypercorn (trio) answering a small JSON body;
- baseline B: a bare MCP SDK low-level server with a no-op tool over Streamable HTTP on Hypercorn.

REST and the bare route are loaded by ``wrk`` (Debian package ``wrk``) with a Lua script for the
POST body. ``/mcp`` is loaded by a Python client in its own process (httpx on trio, one connection
per worker), sending the JSON-RPC POSTs the SDK's Streamable HTTP client sends, in both protocol
eras: 2025-11-25 (``initialize``, then ``mcp-session-id`` on every call) and 2026-07-28 (no
session, ``_meta`` and ``mcp-method`` on every call). That client's own CPU use is printed: on two
cores it competes with the server. Loops are bounded in count and time, loopback only.

    python bench/bench_http.py [--duration 10] [--connections 50] [--json] [--quick]

Results are printed, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

HERE = Path(__file__).resolve()
START_TIMEOUT = 60.0
TARGETS = {"mcp": 1500.0, "rest": 2000.0, "p99_ms": 50.0}
MODERN = "2026-07-28"
LEGACY = "2025-11-25"
CLIENT_INFO = {"name": "bench_http", "version": "1"}
ACCEPT = "application/json, text/event-stream"


# ---------------------------------------------------------------- child processes


class LineTail:
    """Reads a child's stderr (or stdout) line by line as it comes, so the child never blocks."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._arrived = trio.Event()

    async def follow(self, stream: trio.abc.ReceiveStream) -> None:
        buffer = b""
        while chunk := await stream.receive_some(65536):
            *lines, buffer = (buffer + chunk).split(b"\n")
            # Keep only what we look for: access-log lines at 3,000/s would grow without bound.
            for line in lines:
                text = line.decode(errors="replace")
                if '"http.request"' not in text:
                    self.lines.append(text)
            self._arrived.set()
            self._arrived = trio.Event()

    async def wait_for(self, predicate: Callable[[str], bool]) -> str:
        seen = 0
        while True:
            for line in self.lines[seen:]:
                if predicate(line):
                    return line
            seen = len(self.lines)
            await self._arrived.wait()


@asynccontextmanager
async def child(
    argv: list[str], *, ready: Callable[[str], bool], name: str, env: dict[str, str] | None = None
) -> AsyncIterator[tuple[trio.Process, str]]:
    """Start ``argv``, drain its stderr and stdout, yield once a line satisfies ``ready``."""
    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(
            functools.partial(
                trio.run_process,
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=dict(os.environ, QSYSD_LOAD_PLUGINS="", **(env or {})),
                check=False,
            )
        )
        assert process.stderr is not None and process.stdout is not None
        tail = LineTail()
        nursery.start_soon(tail.follow, process.stderr)
        nursery.start_soon(tail.follow, process.stdout)
        try:
            with trio.fail_after(START_TIMEOUT):
                line = await tail.wait_for(ready)
        except trio.TooSlowError:
            process.kill()
            raise SystemExit(f"{name} did not start: " + "\n".join(tail.lines[-20:])) from None
        try:
            yield process, line
        finally:
            if process.returncode is None:
                process.terminate()
                with trio.move_on_after(15):
                    await process.wait()
                if process.returncode is None:
                    process.kill()


def _event(line: str, event: str) -> dict[str, Any] | None:
    if f'"{event}"' not in line:
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if record.get("event") == event else None


# ---------------------------------------------------------------- baseline servers


def serve_bare_quart() -> None:
    """Baseline A: one Quart-Trio route answering a small JSON body, Hypercorn (trio)."""
    import logging

    from hypercorn.config import Config
    from hypercorn.trio import serve
    from quart_trio import QuartTrio

    app = QuartTrio("bare", static_folder=None)

    @app.post("/echo")
    async def echo() -> Any:
        return {"ok": True, "value": -20.0}

    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.errorlog = logging.getLogger("bare")
    config.accesslog = None

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(functools.partial(serve, app, config))
            print(json.dumps({"event": "bare.listening", "urls": urls}), flush=True)

    trio.run(run)


def serve_bare_mcp() -> None:
    """Baseline B: the MCP SDK's low-level server, one no-op tool, Streamable HTTP, Hypercorn."""
    import logging

    from hypercorn.config import Config
    from hypercorn.trio import serve
    from mcp import types
    from mcp.server.lowlevel import Server
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        tool = types.Tool(name="noop", description="Does nothing.", input_schema={"type": "object"})
        return types.ListToolsResult(tools=[tool])

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        return types.CallToolResult(content=[types.TextContent(type="text", text="ok")])

    server: Server[Any] = Server("bare", on_list_tools=list_tools, on_call_tool=call_tool)
    manager = StreamableHTTPSessionManager(app=server)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
            assert message["type"] == "lifespan.shutdown"
            await send({"type": "lifespan.shutdown.complete"})
            return
        await manager.handle_request(scope, receive, send)

    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.errorlog = logging.getLogger("bare")
    config.accesslog = None

    async def run() -> None:
        async with manager.run(), trio.open_nursery() as nursery:
            urls = await nursery.start(functools.partial(serve, app, config))
            print(json.dumps({"event": "bare.listening", "urls": urls}), flush=True)

    trio.run(run)


# ---------------------------------------------------------------- the /mcp load generator


def _mcp_headers(
    era: str, session: str | None, method: str, name: str | None, token: str | None = None
) -> dict[str, str]:
    headers = {"accept": ACCEPT, "content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    if era == "modern":
        headers["mcp-protocol-version"] = MODERN
        headers["mcp-method"] = method
        if name is not None:
            headers["mcp-name"] = name
    elif session is not None:
        headers["mcp-session-id"] = session
        headers["mcp-protocol-version"] = LEGACY
    return headers


def _modern_meta() -> dict[str, Any]:
    return {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": CLIENT_INFO,
        "io.modelcontextprotocol/clientCapabilities": {},
    }


async def _legacy_session(client: Any, url: str, token: str | None) -> str:
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": CLIENT_INFO},
    }
    r = await client.post(url, json=init, headers=_mcp_headers("legacy", None, "initialize", None,
                                                               token))  # fmt: skip
    r.raise_for_status()
    session = str(r.headers["mcp-session-id"])
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    headers = _mcp_headers("legacy", session, "notifications/initialized", None, token)
    (await client.post(url, json=note, headers=headers)).raise_for_status()
    return session


def _answer_ok(response: Any) -> bool:
    """A 200 whose JSON-RPC answer (JSON or one SSE ``data:`` event) is a result, not an error."""
    if response.status_code != 200:
        return False
    text = response.text
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:] for line in text.splitlines() if line.startswith("data:")]
        text = data[-1] if data else "{}"
    message = json.loads(text)
    result = message.get("result")
    return isinstance(result, dict) and not result.get("isError", False)


def mcp_load(args: argparse.Namespace) -> None:
    """Child process: ``connections`` workers, one HTTP connection each, calling one tool."""
    import httpx

    tool_args = json.loads(args.tool_args)
    alternate = json.loads(args.alternate) if args.alternate else None
    token = os.environ.get(TOKEN_ENV) or None  # not on the command line, where ps shows it

    async def run() -> dict[str, Any]:
        samples: list[float] = []
        errors = 0
        connected = 0
        all_connected = trio.Event()
        clock: dict[str, Any] = {}
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)

        async def worker(index: int) -> None:
            nonlocal errors, connected
            async with httpx.AsyncClient(timeout=10.0, limits=limits) as client:
                session = (
                    await _legacy_session(client, args.url, token) if args.era == "legacy" else None
                )
                headers = _mcp_headers(args.era, session, "tools/call", args.tool, token)
                connected += 1
                if connected == args.connections:
                    clock["deadline"] = trio.current_time() + args.duration
                    clock["wall0"] = time.perf_counter()
                    clock["cpu0"] = resource.getrusage(resource.RUSAGE_SELF)
                    all_connected.set()
                await all_connected.wait()  # the clock runs once every session is open
                for i in range(args.max_calls):
                    if trio.current_time() >= clock["deadline"]:
                        break
                    arguments = alternate if alternate and i % 2 else tool_args
                    params: dict[str, Any] = {"name": args.tool, "arguments": arguments}
                    if args.era == "modern":
                        params["_meta"] = _modern_meta()
                    body = {"jsonrpc": "2.0", "id": i + 1, "method": "tools/call", "params": params}
                    t0 = time.perf_counter()
                    try:
                        response = await client.post(args.url, json=body, headers=headers)
                        ok = _answer_ok(response)
                    except (httpx.HTTPError, ValueError):
                        ok = False
                    samples.append((time.perf_counter() - t0) * 1000)
                    errors += not ok
                if session is not None:
                    with contextlib.suppress(httpx.HTTPError):
                        await client.delete(args.url, headers=headers)

        async with trio.open_nursery() as nursery:
            for index in range(args.connections):
                nursery.start_soon(worker, index)
        wall = time.perf_counter() - clock["wall0"]
        cpu0 = clock["cpu0"]
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        return {"samples": samples, "errors": errors, "wall_s": wall, "client_cpu_s": cpu}

    result = trio.run(run)
    samples = sorted(result.pop("samples"))
    result.update(
        calls=len(samples),
        p50_ms=_percentile(samples, 0.50),
        p99_ms=_percentile(samples, 0.99),
    )
    print(json.dumps({"event": "load.done", **result}), flush=True)


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run_mcp_load(
    url: str,
    era: str,
    tool: str,
    tool_args: Any,
    opts: argparse.Namespace,
    alternate: Any = None,
    token: str | None = None,
) -> dict[str, Any]:
    argv = [
        sys.executable, str(HERE), "--_mcp-load", "--url", url, "--era", era, "--tool", tool,
        "--tool-args", json.dumps(tool_args), "--alternate", json.dumps(alternate or ""),
        "--connections", str(opts.connections), "--duration", str(opts.duration),
        "--max-calls", str(opts.max_calls),
    ]  # fmt: skip
    with trio.fail_after(opts.duration + START_TIMEOUT):
        async with child(
            argv,
            ready=lambda ln: _event(ln, "load.done") is not None,
            name="load",
            env={TOKEN_ENV: token or ""},
        ) as (_, line):
            record = _event(line, "load.done")
            assert record is not None
    calls = record["calls"]
    return {
        "calls": calls,
        "calls_per_s": calls / record["wall_s"],
        "p50_ms": record["p50_ms"],
        "p99_ms": record["p99_ms"],
        "errors": record["errors"],
        "generator": "python httpx+trio",
        "client_cpu_pct": 100.0 * record["client_cpu_s"] / record["wall_s"],
    }


# ---------------------------------------------------------------- wrk


WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
%s
local bodies = {%s}
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, bodies[(n %% #bodies) + 1])
end
"""


def _wrk_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    assert match, text
    value, unit = float(match[1]), match[2]
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


async def run_wrk(
    url: str, bodies: list[Any], opts: argparse.Namespace, token: str | None = None
) -> dict[str, Any]:
    lua = ", ".join(json.dumps(json.dumps(b)) for b in bodies)
    auth = f'wrk.headers["Authorization"] = "Bearer {token}"' if token else ""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        os.fchmod(script.fileno(), 0o600)  # it holds the token
        script.write(WRK_SCRIPT % (auth, lua))
    try:
        argv = [
            "wrk", "-t1", f"-c{opts.connections}", f"-d{max(1, round(opts.duration))}s",
            "--timeout", "10s", "--latency", "-s", script.name, url,
        ]  # fmt: skip
        with trio.fail_after(opts.duration + START_TIMEOUT):
            done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True)
    finally:
        os.unlink(script.name)
    out = done.stdout.decode()
    requests = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    assert requests, out
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.M))  # "1.08s " is padded
    if set(latency) != {"50", "99"}:
        raise SystemExit(
            f"wrk against {url} gave no latency distribution:\n{out}{done.stderr.decode()}"
        )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    errors = int(non_2xx[1]) if non_2xx else 0
    if socket_errors:
        errors += sum(int(x) for x in socket_errors.groups())
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert rps, out
    return {
        "calls": int(requests[1]),
        "calls_per_s": float(rps[1]),
        "p50_ms": _wrk_ms(latency["50"]),
        "p99_ms": _wrk_ms(latency["99"]),
        "errors": errors,
        "generator": "wrk -t1",
        "client_cpu_pct": None,
    }


# ---------------------------------------------------------------- the run


#: Budgets above what the bench reaches: every call is counted, none refused. Per second, so
#: a moving window holds a second of calls, as a production budget of N/minute holds N.
BENCH_RATE = "5000/second"
#: The /mcp load generator reads its token from here.
TOKEN_ENV = "QSYSD_BENCH_TOKEN"


def _config(tmp: Path, emulator_port: int, *, auth: bool) -> Path:
    """A ``qsysd serve`` config; ``auth``: API tokens and every rate limit on, else neither."""
    folder = tmp / ("auth-on" if auth else "auth-off")
    folder.mkdir()
    rates = ("reads", "writes", "address_reads", "address_writes")
    budget = BENCH_RATE if auth else "off"
    access = f'mode = "{"token" if auth else "none"}"\n' + "".join(
        f'rate_limit_{r} = "{budget}"\n' for r in rates
    )
    config = folder / "qsysd.toml"
    config.write_text(
        f'[[cores]]\nname = "venue"\nhost = "127.0.0.1"\nport = {emulator_port}\n'
        f'[state]\ndir = "{folder / "state"}"\n'
        "[policy]\nmax_gain_step_db = 120.0\n"
        '[http]\nenabled = true\nlisten = "127.0.0.1:0"\n'
        f"[auth]\n{access}"
        # info: the http.listening line tells the port; it also keeps the access log on, as
        # a production daemon runs.
        '[logging]\nformat = "json"\nlevel = "info"\n'
    )
    return config


async def _operator_token(config: Path) -> str:
    """``qsysd token create`` for the bench's operator (printed once on stdout)."""
    argv = [sys.executable, "-m", "qsysd", "token", "create", "--name", "bench",
            "--role", "operator", "--config", str(config)]  # fmt: skip
    with trio.fail_after(START_TIMEOUT):
        done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True)
    return done.stdout.decode().strip()


def access_cost(calls: int = 20_000) -> dict[str, float]:
    """CPU microseconds per call of authentication and of the rate limits, in this process.

    The HTTP rows measure the whole request on a shared machine; this isolates what access
    control itself adds, with the same token store and limits a daemon uses.
    """
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    from qsysd.access import Authenticator, JwtVerifier, RateLimits, Roles, TokenStore
    from qsysd.config import JwtConfig
    from qsysd.logs import configure_logging

    configure_logging("warning", "json")  # on stderr: stdout may be the --json document

    def per_call(auth: Authenticator, header: str) -> float:
        started = time.process_time()
        for _ in range(calls):
            auth.authenticate(header, "rest", "127.0.0.1")
        return (time.process_time() - started) / calls * 1e6

    with tempfile.TemporaryDirectory() as tmp:
        roles = Roles()
        tokens = TokenStore(Path(tmp) / "tokens.json", roles=roles.__contains__)
        token = tokens.create("bench", "operator")
        authenticate_us = per_call(Authenticator("token", tokens=tokens, roles=roles),
                                   f"Bearer {token}")  # fmt: skip
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        (Path(tmp) / "jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "k"}]}))
        issuer, audience = "https://login.bench", "https://qsys.bench/mcp"
        config = JwtConfig(issuer=issuer, audience=audience, keys_file=f"{tmp}/jwks.json")
        verifier = JwtVerifier(config, is_role=roles.__contains__)
        verifier.load()
        claims = {"iss": issuer, "aud": audience, "sub": "bench", "roles": "operator",
                  "exp": int(time.time()) + 3600}  # fmt: skip
        signed = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k"})
        jwt_auth = Authenticator("jwt", jwt=verifier, roles=roles)
        jwt_us = per_call(jwt_auth, f"Bearer {signed}")  # verified once, then remembered
        fresh = [jwt.encode({**claims, "jti": str(i)}, key, algorithm="RS256",
                            headers={"kid": "k"}) for i in range(1000)]  # fmt: skip
        started = time.process_time()
        for each in fresh:
            jwt_auth.authenticate(f"Bearer {each}", "rest", "127.0.0.1")
        jwt_first_us = (time.process_time() - started) / len(fresh) * 1e6
    # The default budgets; a new principal and address every 2,500 calls keeps each window
    # below its 3,000 (a window's length is what a call's cost grows with).
    limits = RateLimits(read="3000/minute", address_read="6000/minute",
                        failed_authentication="30/minute")  # fmt: skip

    async def spend() -> float:
        started = time.process_time()
        for i in range(calls):
            who = f"bench-{i // 2500}"
            await limits.check("failed-authentication", address=who)
            await limits.spend("read", principal=who, address=who)
        return (time.process_time() - started) / calls * 1e6

    return {
        "authenticate_us": authenticate_us,
        "jwt_rs256_us": jwt_us,
        "jwt_rs256_first_us": jwt_first_us,
        "rate_limits_us": trio.run(spend),
    }


def _process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _wait_connected(base: str, token: str | None) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(timeout=5.0, headers=headers) as client:
        with trio.fail_after(START_TIMEOUT):
            while True:
                r = await client.post(f"{base}/api/v1/tools/qsys_status", json={})
                cores = r.json().get("cores", []) if r.status_code == 200 else []
                if cores and all(core.get("connected") for core in cores):
                    return
                await trio.sleep(0.1)


def _listening_url(line: str) -> str | None:
    record = _event(line, "http.listening") or _event(line, "bare.listening")
    return str(record["urls"][0]).rstrip("/") if record else None


def _is_listening(line: str) -> bool:
    return _listening_url(line) is not None


async def measure(opts: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    read_args = {"controls": ["Bar.gain"]}
    write_a = {"changes": [{"control": "Bar.gain", "value": -20.0}]}
    write_b = {"changes": [{"control": "Bar.gain", "value": -21.0}]}
    qsysd = [sys.executable, "-m", "qsysd"]

    def add(name: str, baseline: str | None, kind: str, result: dict[str, Any]) -> None:
        rows.append({"name": name, "baseline": baseline, "kind": kind, **result})
        print(f"  measured {name}: {result['calls_per_s']:.0f} calls/s", file=sys.stderr)

    async with child(
        [sys.executable, str(HERE), "--_serve-bare-quart"], ready=_is_listening, name="bare quart"
    ) as (_, line):
        url = _listening_url(line)
        add(
            "bare Quart-Trio POST /echo",
            None,
            "bare-rest",
            await run_wrk(f"{url}/echo", [{}], opts),
        )
    async with child(
        [sys.executable, str(HERE), "--_serve-bare-mcp"], ready=_is_listening, name="bare mcp"
    ) as (_, line):
        url = f"{_listening_url(line)}/mcp"
        for era in ("legacy", "modern"):
            result = await run_mcp_load(url, era, "noop", {}, opts)
            add(f"bare MCP SDK no-op tool ({era})", None, f"bare-mcp-{era}", result)

    with tempfile.TemporaryDirectory() as tmp:
        emulate = [*qsysd, "emulate", "--listen", "127.0.0.1:0", "--ws-listen", "off"]
        async with child(
            emulate, ready=lambda ln: _event(ln, "emulator.listening") is not None, name="emulator"
        ) as (_, line):
            record = _event(line, "emulator.listening")
            assert record is not None
            port = int(record["tcp_port"])
            on_config = _config(Path(tmp), port, auth=True)
            token = await _operator_token(on_config)
            off_config = _config(Path(tmp), port, auth=False)
            async with (
                child([*qsysd, "serve", "--config", str(on_config)], ready=_is_listening,
                      name="qsysd serve (auth on)") as (on_process, on_line),
                child([*qsysd, "serve", "--config", str(off_config)], ready=_is_listening,
                      name="qsysd serve (auth off)") as (off_process, off_line),
            ):  # fmt: skip
                doors = {
                    "on": (_listening_url(on_line), token, on_process.pid),
                    "off": (_listening_url(off_line), None, off_process.pid),
                }
                for base, key, _ in doors.values():
                    assert base is not None
                    await _wait_connected(base, key)
                pairs = [0]

                async def both(name: str, baseline: str, kind: str, run: Any) -> None:
                    # Interleaved under the same load on the machine: on then off, then off
                    # then on for the next row, so neither side always runs first.
                    order = list(doors.items())
                    if pairs[0] % 2:
                        order.reverse()
                    pairs[0] += 1
                    measured = {}
                    for auth, (base, key, pid) in order:
                        cpu0 = _process_cpu_s(pid)
                        result = await run(base, key)
                        cpu = _process_cpu_s(pid) - cpu0
                        result["server_cpu_ms_per_call"] = 1000 * cpu / max(1, result["calls"])
                        measured[auth] = result
                        label = f"{name}, auth {auth}"
                        print(f"  measured {label}: {result['calls_per_s']:.0f} calls/s",
                              file=sys.stderr)  # fmt: skip
                    for auth in doors:
                        rows.append({"name": f"{name}, auth {auth}", "baseline": baseline,
                                     "kind": kind, "auth": auth, **measured[auth]})  # fmt: skip

                await both(
                    "REST qsys_get (cached read)",
                    "bare-rest",
                    "rest",
                    lambda b, k: run_wrk(f"{b}/api/v1/tools/qsys_get", [read_args], opts, k),
                )
                await both(
                    "REST qsys_set (write)",
                    "bare-rest",
                    "rest",
                    lambda b, k: run_wrk(f"{b}/api/v1/tools/qsys_set", [write_a, write_b], opts, k),
                )
                for era in ("legacy", "modern"):
                    await both(
                        f"/mcp qsys_get ({era})",
                        f"bare-mcp-{era}",
                        "mcp",
                        lambda b, k, era=era: run_mcp_load(
                            f"{b}/mcp", era, "qsys_get", read_args, opts, token=k
                        ),
                    )
                await both("/mcp qsys_set (legacy)", "bare-mcp-legacy", "mcp",
                           lambda b, k: run_mcp_load(f"{b}/mcp", "legacy", "qsys_set", write_a,
                                                     opts, alternate=write_b, token=k))  # fmt: skip
    return rows


def _verdict(row: dict[str, Any]) -> str:
    target = TARGETS.get(row["kind"])
    if target is None:
        return "baseline"
    ok = row["calls_per_s"] >= target and row["p99_ms"] <= TARGETS["p99_ms"]
    return f"{'meets' if ok else 'MISSES'} >={target:.0f}/s p99<={TARGETS['p99_ms']:.0f}ms"


def print_table(rows: list[dict[str, Any]], opts: argparse.Namespace) -> None:
    by_kind = {row["kind"]: row for row in rows}
    print(
        f"HTTP tool calls, {opts.connections} concurrent connections, {opts.duration:g} s per row, "
        f"{os.cpu_count()} CPUs (server, load generator and emulator share them)"
    )
    head = f"{'row':<34}{'calls/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'vs base':>9}  "
    print(head + "client CPU  target")
    for row in rows:
        base = by_kind.get(row["baseline"] or "")
        ratio = f"{row['calls_per_s'] / base['calls_per_s']:8.2f}x" if base else f"{'-':>9}"
        cpu = row["client_cpu_pct"]
        cpu_text = f"{cpu:5.0f} %" if cpu is not None else "  wrk  "
        print(
            f"{row['name']:<34}{row['calls_per_s']:9.0f}{row['p50_ms']:9.2f}{row['p99_ms']:9.2f}"
            f"{row['errors']:8d}{ratio}  {cpu_text:<10}  {_verdict(row)}"
        )
    print(
        "vs base = calls/s over the same-run baseline (REST: bare Quart-Trio; /mcp: bare MCP SDK "
        "server in the same era). client CPU = the Python load generator's own CPU share."
    )
    offs = {row["name"].removesuffix(", auth off"): row for row in rows if row.get("auth") == "off"}
    print("\nThe cost of authentication and rate limits (the same row, auth on vs auth off):")
    for row in rows:
        off = offs.get(row["name"].removesuffix(", auth on"))
        if row.get("auth") != "on" or off is None:
            continue
        ratio = row["calls_per_s"] / off["calls_per_s"]
        print(f"  {row['name'].removesuffix(', auth on'):<30} {row['calls_per_s']:7.0f} vs "
              f"{off['calls_per_s']:7.0f} calls/s ({ratio:.2f}x), p50 {row['p50_ms']:.1f} vs "
              f"{off['p50_ms']:.1f} ms, server CPU {row['server_cpu_ms_per_call']:.2f} vs "
              f"{off['server_cpu_ms_per_call']:.2f} ms per call")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per row")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--max-calls", type=int, default=100_000, help="per connection")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--quick", action="store_true", help="2 s per row: proves it runs")
    # Internal: the same file is the baseline servers and the /mcp load generator.
    parser.add_argument("--_serve-bare-quart", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--_serve-bare-mcp", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--_mcp-load", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--era", choices=["legacy", "modern"], help=argparse.SUPPRESS)
    parser.add_argument("--tool", help=argparse.SUPPRESS)
    parser.add_argument("--tool-args", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--alternate", default="", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts._serve_bare_quart:
        return serve_bare_quart()
    if opts._serve_bare_mcp:
        return serve_bare_mcp()
    if opts._mcp_load:
        return mcp_load(opts)
    if shutil.which("wrk") is None:
        raise SystemExit("bench_http needs wrk: apt-get install -y wrk")
    if opts.quick:
        opts.duration, opts.max_calls = 2.0, 2_000
    rows = trio.run(measure, opts)
    cost = access_cost()
    if opts.json:
        document = {"connections": opts.connections, "duration_s": opts.duration,
                    "targets": TARGETS, "rows": rows, "access_cost": cost}  # fmt: skip
        print(json.dumps(document, indent=2))
    else:
        print_table(rows, opts)
        print(
            "Access control's own CPU per call, in process: an API token "
            f"{cost['authenticate_us']:.1f} us, a JWT (RS256) {cost['jwt_rs256_first_us']:.0f} us "
            f"the first time and {cost['jwt_rs256_us']:.1f} us after, "
            f"the rate limits {cost['rate_limits_us']:.1f} us"
        )


if __name__ == "__main__":
    main()
