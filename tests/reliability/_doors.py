"""A real daemon behind each of its three doors, as the reliability tests drive it.

- ``stdio``: ``qsysd serve --stdio`` as a subprocess, driven by the MCP SDK's stdio client (as
  ``tests/e2e/test_stdio_serve.py`` does);
- ``mcp`` and ``rest``: the daemon in process (``Daemon.run``, the code ``qsysd serve`` runs)
  with its HTTP front end on a loopback port, driven by the MCP SDK's Streamable HTTP client
  and by httpx. In process, its trio tasks can be counted.

Every door answers :meth:`Door.call` with an :class:`Answer` and follows one component's
values (an MCP resource subscription, or the REST event stream). Sockets to the emulator are
counted per process from ``/proc`` (:func:`sockets_to`), so a leaked connection shows even
when the emulator has already closed its side.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, aclosing, asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio
from mcp import Client, StdioServerParameters, types
from mcp.client.stdio import stdio_client

from qsysd.config import load_config
from qsysd.daemon import Daemon

#: Longest a single call may take to answer, whatever the fault: twice the configured
#: request timeout (a write and its probe) plus slack for a loaded machine. A hang fails.
REQUEST_TIMEOUT = 1.0
CALL_DEADLINE = 2 * REQUEST_TIMEOUT + 3.0
#: The words of an error that says nothing: the SDK's catch-all, or a traceback.
UNCLEAR = ("Error executing tool", "Traceback", "Internal Server Error", "internal error")
CORE = "venue"
PIN = "qsys-pin-4821"  # long enough that the secret-in-logs check cannot match by chance


@attrs.frozen
class Answer:
    """One call's answer: a result (``data``) or a clear error (``error``)."""

    ok: bool
    data: dict[str, Any] | None
    error: str | None
    seconds: float


def write_config(
    folder: Path,
    name: str,
    cores: Sequence[tuple[str, int]],
    *,
    http: bool,
    extra: str = "",
) -> Path:
    """A daemon's TOML: one Core (``cores[1]`` is its redundant backup), PIN logon."""
    (host, port), *backup = cores
    core = (
        f'[[cores]]\nname = "{CORE}"\nhost = "{host}"\nport = {port}\n'
        f'username = "operator"\npassword = "{PIN}"\n'
        f"request_timeout = {REQUEST_TIMEOUT}\nkeepalive_interval = 1.0\n"
    )
    if backup:
        core += f'backup_host = "{backup[0][0]}"\nbackup_port = {backup[0][1]}\n'
    state = folder / f"state-{name}"
    text = (
        f'{core}[state]\ndir = "{state}"\nsnapshot_interval = 1.0\n'
        "[policy]\nmax_gain_step_db = 120.0\n"
        f'[logging]\nlevel = "info"\nformat = "json"\n{extra}'
    )
    if http:
        text += '[http]\nenabled = true\nlisten = "127.0.0.1:0"\nstop_grace = 2.0\n'
        # Faults are this suite's subject; authentication has its own tests (loopback only).
        text += '[auth]\nmode = "none"\n'
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def _check_clear(door: str, tool: str, text: str) -> str:
    assert text.strip(), f"{door} {tool}: an error without words"
    assert not any(word in text for word in UNCLEAR), f"{door} {tool}: unclear error {text!r}"
    return text


class Door:
    """One way in: calls tools and follows a component's values."""

    name: str
    pid: int

    async def call(self, tool: str, arguments: dict[str, Any]) -> Answer:
        """Call ``tool``; fails the test on a hang, a protocol error or an unclear error."""
        started = trio.current_time()
        with trio.fail_after(CALL_DEADLINE):
            ok, data, error = await self._call(tool, arguments)
        seconds = trio.current_time() - started
        if not ok:
            assert error is not None
            _check_clear(self.name, tool, error)
        return Answer(ok, data, error, seconds)

    async def _call(
        self, tool: str, arguments: dict[str, Any]
    ) -> tuple[bool, dict[str, Any] | None, str | None]:
        raise NotImplementedError

    async def follow(self, component: str, *, task_status: trio.TaskStatus[None]) -> None:
        """Follow ``component``'s values until cancelled (started once subscribed)."""
        raise NotImplementedError

    async def wait_followed(self, component: str, string: str) -> None:
        """Until the followed component is seen holding a control whose string is ``string``."""
        raise NotImplementedError


class McpDoor(Door):
    """The MCP SDK's client, over stdio or Streamable HTTP; follows by subscription."""

    def __init__(self, name: str, client: Client, pid: int) -> None:
        self.name = name
        self.client = client
        self.pid = pid
        self._updated = trio.Event()

    async def _call(
        self, tool: str, arguments: dict[str, Any]
    ) -> tuple[bool, dict[str, Any] | None, str | None]:
        result = await self.client.call_tool(tool, arguments)
        if result.is_error:
            block = result.content[0] if result.content else None
            return False, None, block.text if isinstance(block, types.TextContent) else ""
        assert result.structured_content is not None, (self.name, tool)
        return True, result.structured_content, None

    def _uri(self, component: str) -> str:
        return f"qsys://core/{CORE}/component/{component}/controls"

    async def follow(self, component: str, *, task_status: trio.TaskStatus[None]) -> None:
        uri = self._uri(component)
        async with self.client.listen(resource_subscriptions=[uri]) as subscription:
            task_status.started()
            async for event in subscription:
                if getattr(event, "uri", None) == uri:
                    self._updated.set()
                    self._updated = trio.Event()

    async def wait_followed(self, component: str, string: str) -> None:
        while True:
            updated = self._updated
            read = await self.client.read_resource(self._uri(component))
            block = read.contents[0]
            if isinstance(block, types.TextResourceContents) and f'"{string}"' in block.text:
                return
            await updated.wait()


class RestDoor(Door):
    """REST over httpx; follows by the Server-Sent Events stream of value events."""

    def __init__(self, client: httpx.AsyncClient, base: str, pid: int) -> None:
        self.name = "rest"
        self.client = client
        self.base = base
        self.pid = pid
        self._strings: dict[str, set[str]] = {}
        self._arrived = trio.Event()

    async def _call(
        self, tool: str, arguments: dict[str, Any]
    ) -> tuple[bool, dict[str, Any] | None, str | None]:
        r = await self.client.post(f"{self.base}/api/v1/tools/{tool}", json=arguments)
        if r.status_code == 200:
            return True, r.json(), None
        assert r.status_code < 500 or r.status_code in (502, 503, 504), (tool, r.text)
        assert r.headers["content-type"] == "application/problem+json", (tool, r.text)
        problem = r.json()
        assert isinstance(problem.get("retryable"), bool), problem
        return False, None, str(problem.get("detail") or "")

    async def follow(self, component: str, *, task_status: trio.TaskStatus[None]) -> None:
        params = {"component": component, "kinds": "value"}
        url = f"{self.base}/api/v1/events"
        strings = self._strings.setdefault(component, set())
        async with self.client.stream("GET", url, params=params, timeout=None) as r:
            assert r.status_code == 200, r.status_code
            task_status.started()
            async with aclosing(r.aiter_lines()) as lines:
                async for line in lines:
                    if line.startswith("data: "):
                        data = json.loads(line[len("data: ") :])
                        if "string" in data:
                            strings.add(str(data["string"]))
                            self._arrived.set()
                            self._arrived = trio.Event()

    async def wait_followed(self, component: str, string: str) -> None:
        while string not in self._strings.get(component, ()):
            await self._arrived.wait()


@attrs.define
class Doors:
    """The three doors of two daemons on the same Core(s), and what can be counted of them."""

    stdio: McpDoor
    mcp: McpDoor
    rest: RestDoor
    daemon: Daemon  # the in-process one, behind mcp and rest
    daemon_task: trio.lowlevel.Task

    def all(self) -> list[Door]:
        return [self.stdio, self.mcp, self.rest]

    def daemon_tasks(self) -> int:
        """Tasks alive in the in-process daemon's tree."""
        return count_tasks(self.daemon_task)


#: A task per HTTP connection: how many a client keeps alive is the client's business.
_CONNECTION_TASK = "trio._highlevel_serve_listeners._run_handler"


def count_tasks(task: trio.lowlevel.Task) -> int:
    """Tasks in ``task``'s tree, but for the HTTP server's per-connection ones."""
    children = (t for n in task.child_nurseries for t in n.child_tasks)
    return 1 + sum(count_tasks(t) for t in children if t.name != _CONNECTION_TASK)


def _pid_of(config: Path) -> int:
    """The pid of the child process started with ``config`` on its command line."""
    mine = str(os.getpid())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if stat[1] == mine and str(config).encode() in cmdline:
            return int(entry.name)
    raise AssertionError(f"no child runs {config}")


def sockets_to(pid: int, port: int) -> int:
    """Open TCP sockets of process ``pid`` whose remote end is 127.0.0.1:``port``."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    count = 0
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote, inode = fields[2], fields[9]
        if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == port:
            count += 1
    return count


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def _run_daemon(daemon: Daemon, *, task_status: trio.TaskStatus[trio.lowlevel.Task]) -> None:
    task_status.started(trio.lowlevel.current_task())
    await daemon.run(stdio=False)


@asynccontextmanager
async def open_doors(
    folder: Path, cores: Sequence[tuple[str, int]], *, follow: str | None = None
) -> AsyncIterator[Doors]:
    """A stdio daemon and an in-process HTTP daemon on ``cores``, their doors connected.

    With ``follow``, every door follows that component from the start.
    """
    stdio_config = write_config(folder, "stdio", cores, http=False)
    http_config = write_config(folder, "http", cores, http=True)
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "qsysd", "serve", "--stdio", "--config", str(stdio_config)],
        env=dict(os.environ, QSYSD_LOAD_PLUGINS=""),
    )
    daemon = Daemon(load_config(str(http_config)))
    async with AsyncExitStack() as stack:
        nursery = await stack.enter_async_context(trio.open_nursery())
        stack.callback(daemon.stop)  # runs before the nursery waits for the daemon to end
        task: trio.lowlevel.Task = await nursery.start(_run_daemon, daemon)
        errlog = stack.enter_context((folder / "stdio-stderr.log").open("w"))
        stdio = await stack.enter_async_context(Client(stdio_client(params, errlog=errlog)))
        with trio.fail_after(30):
            await daemon.wait_ready()
            while not _connected(await stdio.call_tool("qsys_status", {})):  # noqa: ASYNC110
                await trio.sleep(0.05)
        assert daemon.http is not None
        base = daemon.http.urls[0].rstrip("/")
        mcp = await stack.enter_async_context(Client(f"{base}/mcp"))
        rest = await stack.enter_async_context(httpx.AsyncClient(timeout=CALL_DEADLINE * 2))
        pid = os.getpid()
        doors = Doors(
            McpDoor("stdio", stdio, _pid_of(stdio_config)),
            McpDoor("mcp", mcp, pid),
            RestDoor(rest, base, pid),
            daemon,
            task,
        )
        if follow is not None:
            followers = await stack.enter_async_context(trio.open_nursery())
            stack.callback(followers.cancel_scope.cancel)
            for door in doors.all():
                await followers.start(door.follow, follow)
        yield doors


def _connected(result: types.CallToolResult) -> bool:
    cores = (result.structured_content or {}).get("cores", [])
    return bool(cores) and all(c["connected"] for c in cores)


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``samples``; NaN for none."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]
