"""A redundant pair: two emulated Cores, Active and Standby, of one design."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
import trio

from qsysd.emulator._design import Design
from qsysd.emulator._engine import new_design_code
from qsysd.emulator._model import Core
from qsysd.emulator._server import EmulatorServer

__all__ = ["EmulatorPair", "serve_redundant_pair"]

_log = structlog.get_logger(__name__)


class EmulatorPair:
    """Two servers sharing one live model (state stays in sync, as a real pair's does)."""

    def __init__(self, primary: EmulatorServer, backup: EmulatorServer) -> None:
        self.primary = primary
        self.backup = backup

    @property
    def servers(self) -> tuple[EmulatorServer, EmulatorServer]:
        return (self.primary, self.backup)

    @property
    def active(self) -> EmulatorServer:
        return self.primary if self.primary.state == "Active" else self.backup

    @property
    def standby(self) -> EmulatorServer:
        return self.backup if self.primary.state == "Active" else self.primary

    def failover(self) -> None:
        """Swap Active and Standby; both push EngineStatus with the new State."""
        new_active, new_standby = self.standby, self.active
        new_standby.engine.update_status(state="Standby")
        new_active.engine.update_status(state="Active")
        _log.info("emulator.failover", active_tcp_port=new_active.tcp_port)

    def restart(self, design_code: str | None = None) -> str:
        """Redeploy both Cores with one new DesignCode; every connection drops."""
        code = design_code or new_design_code()
        for server in self.servers:
            server.restart(code)
        return code


@asynccontextmanager
async def serve_redundant_pair(
    design: Design | None = None,
    *,
    host: str = "127.0.0.1",
    ports: tuple[int, int] = (0, 0),
    ws_ports: tuple[int, int] | None = None,
    password: str | None = None,
    user: str | None = None,
    idle_timeout: float = 60.0,
    design_code: str | None = None,
) -> AsyncIterator[EmulatorPair]:
    """Serve an Active (``pair.primary``) and a Standby (``pair.backup``) Core for the block."""
    if design is None:
        from qsysd.emulator._generate import demo_design

        design = demo_design()
    core = Core(design)
    code = design_code or design.design_code or new_design_code()
    async with trio.open_nursery() as nursery:
        servers = []
        for index, state in enumerate(("Active", "Standby")):
            server = EmulatorServer(
                core=core,
                host=host,
                port=ports[index],
                ws_port=None if ws_ports is None else ws_ports[index],
                password=password,
                user=user,
                idle_timeout=idle_timeout,
                design_code=code,
                state=state,
                is_redundant=True,
            )
            await nursery.start(server.run)
            servers.append(server)
        try:
            yield EmulatorPair(servers[0], servers[1])
        finally:
            nursery.cancel_scope.cancel()
