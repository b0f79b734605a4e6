"""``--standby-of``: a Standby Core in its own server follows an Active one and takes over."""

from __future__ import annotations

import argparse
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
import trio

from qsysd.config import CoreConfig
from qsysd.core import Backoff, CoreLink
from qsysd.emulator import (
    ActiveWatch,
    EmulatorServer,
    add_cli_arguments,
    run_emulator_cli,
    serve_emulator,
    serve_standby,
)
from qsysd.errors import CoreError, TransportError
from qsysd.state import StateStore

WAIT = 10.0
Client = Callable[..., AbstractAsyncContextManager[Any]]


class Active:
    """An Active emulator that a test can stop on its own."""

    def __init__(self, server: EmulatorServer, scope: trio.CancelScope) -> None:
        self.server = server
        self._scope = scope

    def stop(self) -> None:
        self._scope.cancel()


async def start_active(nursery: trio.Nursery, **options: Any) -> Active:
    async def hold(*, task_status: trio.TaskStatus[Active]) -> None:
        with trio.CancelScope() as scope:
            async with serve_emulator(**options) as emu:
                task_status.started(Active(emu, scope))
                await trio.sleep_forever()

    active: Active = await nursery.start(hold)
    return active


@asynccontextmanager
async def standby_of(server: EmulatorServer, **options: Any) -> AsyncIterator[ActiveWatch]:
    options.setdefault("takeover_after", 0.2)
    options.setdefault("keepalive_interval", 0.2)
    options.setdefault("request_timeout", 0.5)
    async with serve_standby(active=(server.host, server.tcp_port), **options) as watch:
        yield watch


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_standby_serves_the_active_cores_design_code_as_standby(client: Client) -> None:
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            active = await start_active(nursery, design_code="ActiveCode12")
            async with standby_of(active.server) as watch, client(watch.server) as c:
                status = (await c.notification("EngineStatus")).params
                assert (status["State"], status["IsRedundant"]) == ("Standby", True)
                assert status["DesignCode"] == "ActiveCode12"
                assert (await c.error("Control.Get", ["MainGain"])).code == -32604
                assert await c.result("NoOp", {}) is True
                assert not watch.took_over
            nursery.cancel_scope.cancel()


async def test_standby_takes_over_when_the_active_core_stops(client: Client) -> None:
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            active = await start_active(nursery)
            async with standby_of(active.server) as watch, client(watch.server) as c:
                assert (await c.notification("EngineStatus")).params["State"] == "Standby"
                active.stop()
                pushed = (await c.notification("EngineStatus")).params
                assert (pushed["State"], pushed["IsRedundant"]) == ("Active", True)
                assert pushed["DesignCode"] == active.server.design_code
                assert watch.took_over and "gone" in (watch.takeover_reason or "")
                assert await c.result("Control.Get", ["MainGain"])
            nursery.cancel_scope.cancel()


async def test_standby_takes_over_when_the_active_core_reports_standby() -> None:
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            active = await start_active(nursery)
            async with standby_of(active.server, takeover_after=60) as watch:
                await active.server.wait_connections(1)
                active.server.engine.update_status(state="Standby")
                await watch.wait_active()
                assert watch.server.state == "Active"
                assert watch.takeover_reason == "the Active Core reports Standby"
            nursery.cancel_scope.cancel()


async def test_standby_stays_standby_when_the_active_core_is_back_within_the_grace() -> None:
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            active = await start_active(nursery)
            async with standby_of(active.server, takeover_after=60) as watch:
                await active.server.wait_connections(1)
                active.server.drop_connections()
                await active.server.wait_connections(0)
                await active.server.wait_connections(1)  # the watch reconnected
                assert watch.server.state == "Standby"
                assert watch.statistics()["losses"] == 1
            nursery.cancel_scope.cancel()


async def test_standby_follows_a_redeploy_of_the_active_core(client: Client) -> None:
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            active = await start_active(nursery)
            async with standby_of(active.server, takeover_after=60) as watch:
                async with client(watch.server) as c:
                    await c.notification("EngineStatus")
                    active.server.restart("Redeployed12")
                    with pytest.raises(EOFError):  # a redeploy drops the Standby's clients too
                        while True:
                            await c.receive()
                async with client(watch.server) as c:
                    status = (await c.notification("EngineStatus")).params
                    assert (status["DesignCode"], status["State"]) == ("Redeployed12", "Standby")
            nursery.cancel_scope.cancel()


async def test_standby_of_an_unreachable_core_fails_at_start_up() -> None:
    port = free_port()
    with trio.fail_after(WAIT), pytest.raises(TransportError, match=str(port)):
        async with serve_standby(active=("127.0.0.1", port)):
            pytest.fail("served without an Active Core")


async def test_core_link_with_a_backup_host_succeeds_after_the_takeover() -> None:
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            active = await start_active(nursery)
            async with standby_of(active.server) as watch:
                standby = watch.server
                config = CoreConfig(
                    name="main",
                    host=active.server.host,
                    port=active.server.tcp_port,
                    backup_host=standby.host,
                    backup_port=standby.tcp_port,
                    request_timeout=0.5,
                    keepalive_interval=0.3,
                    poll_rate=0.05,
                )
                link = CoreLink(
                    config,
                    StateStore(),
                    backoff=Backoff(initial=0.05, maximum=0.2, healthy_after=1.0),
                    failover_check_interval=0.1,
                )
                await nursery.start(link.run)
                await link.wait_connected()
                assert link.active_address == f"{active.server.host}:{active.server.tcp_port}"
                active.stop()
                await watch.wait_active()
                while link.active_address != f"{standby.host}:{standby.tcp_port}":
                    await link.wait_disconnected()
                    await link.wait_connected()
                await link.request(
                    "Component.Set", {"Name": "Bar", "Controls": [{"Name": "gain", "Value": -7}]}
                )
                assert standby.get_value("Bar", "gain") == -7
                assert link.status().state == "Active"
                link.stop()
            nursery.cancel_scope.cancel()


async def test_cli_standby_of_serves_a_standby_and_fails_without_an_active_core() -> None:
    def parse(*argv: str) -> argparse.Namespace:
        parser = argparse.ArgumentParser()
        add_cli_arguments(parser)
        return parser.parse_args(["--listen", "127.0.0.1:0", "--ws-listen", "off", *argv])

    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            active = await start_active(nursery)
            address = f"{active.server.host}:{active.server.tcp_port}"
            ns = parse("--standby-of", address, "--takeover-after", "5")
            [server] = await nursery.start(run_emulator_cli, ns)
            assert (server.state, server.design_code) == ("Standby", active.server.design_code)
            nursery.cancel_scope.cancel()
        ns = parse("--standby-of", f"127.0.0.1:{free_port()}")
        with pytest.RaisesGroup(CoreError, flatten_subgroups=True, allow_unwrapped=True):
            async with trio.open_nursery() as nursery:
                await nursery.start(run_emulator_cli, ns)
    with pytest.raises(SystemExit):
        parse("--redundant", "--standby-of", "127.0.0.1:1710")
