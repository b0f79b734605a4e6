"""The Cores of one link, a single Core or a redundant pair: which one to follow."""

from __future__ import annotations

import attrs
import structlog
import trio

from qsysd.core._endpoint import Endpoint

__all__ = ["CorePair"]

log = structlog.get_logger(__name__)


@attrs.define(eq=False)
class CorePair:
    """The endpoints of a link (the primary, and the backup of a redundant pair).

    The link follows the Core whose State is Active; a lone Core is followed whatever its
    State. Status checks (StatusGet) find a failover that the Cores did not push.
    """

    core: str
    endpoints: list[Endpoint]
    design_mismatch: bool = False

    @property
    def redundant(self) -> bool:
        return len(self.endpoints) > 1

    def any_live(self) -> bool:
        return any(e.live() is not None for e in self.endpoints)

    def choose_active(self, current: Endpoint | None) -> Endpoint | None:
        """The Core to follow: ``current`` while it stays Active, else the first Active one."""
        if not self.redundant:
            return self.endpoints[0] if self.endpoints[0].live() is not None else None
        active = [e for e in self.endpoints if e.is_active()]
        if current in active:
            return current
        return active[0] if active else None

    def first_live(self) -> Endpoint:
        """The first connected Core, else the primary: whose status to show while not serving."""
        for endpoint in self.endpoints:
            if endpoint.live() is not None:
                return endpoint
        return self.endpoints[0]

    async def refresh_status(self) -> None:
        """Ask every connected Core for its status, concurrently."""
        async with trio.open_nursery() as nursery:
            for endpoint in self.endpoints:
                nursery.start_soon(endpoint.refresh_status)

    async def recheck_after_standby(self, failed: Endpoint) -> Endpoint | None:
        """Refresh every Core's status after a -32604; the other Core if it is now Active."""
        await self.refresh_status()
        for endpoint in self.endpoints:
            if endpoint is not failed and endpoint.is_active():
                return endpoint
        return None

    def check_design_match(self) -> None:
        """Log (once) and remember when the connected Cores of a pair run different designs."""
        if not self.redundant:
            return
        codes = {e.engine.design_code for e in self.endpoints if e.live() is not None and e.engine}
        mismatch = len(codes) > 1
        if mismatch and not self.design_mismatch:
            log.error(
                "core.design_mismatch",
                core=self.core,
                codes=sorted(codes),
                hint="both Cores of a redundant pair must run the same design",
            )
        self.design_mismatch = mismatch

    def describe_states(self) -> str:
        """``host:port: State`` of each Core, for messages."""
        return ", ".join(
            f"{e.address}: {e.engine.state if e.engine else 'unknown'}" for e in self.endpoints
        )
