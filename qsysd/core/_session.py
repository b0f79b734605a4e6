"""The serving session on the Core a link follows: discover, subscribe, then take requests."""

from __future__ import annotations

from collections.abc import Callable

import attrs
import structlog
import trio

from qsysd.core._discovery import BatchRequester, ReaderBatchRequester, Requester, discover
from qsysd.core._endpoint import Endpoint
from qsysd.core._subscription import Subscription
from qsysd.errors import CoreError, QrcError, TransportError
from qsysd.qrc import QrcConnection
from qsysd.state import StateStore

__all__ = ["Session", "SessionSettings"]

log = structlog.get_logger(__name__)


@attrs.frozen
class SessionSettings:
    """What a session needs from its link to discover and subscribe."""

    core: str
    store: StateStore
    discovery_concurrency: int
    poll_rate: float
    named_controls: tuple[str, ...]
    max_change_groups: int
    prime_timeout: float  # how long to wait for the first values before serving anyway


@attrs.define(eq=False)
class Session:
    """The Active Core's session: discovered, subscribed, taking requests once ``serving``."""

    endpoint: Endpoint
    connection: QrcConnection
    design_code: str
    scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    subscription: Subscription | None = None
    serving: bool = False

    @property
    def change_groups(self) -> int:
        return len(self.subscription.groups) if self.subscription is not None else 0

    async def discover(
        self, settings: SessionSettings, request: Requester, batch: BatchRequester | None = None
    ) -> bool:
        """Discover the design when the store's DesignCode differs; whether it did."""
        core, store, design = settings.core, settings.store, self.design_code
        if design and store.design_code(core) == design:
            return False
        started = trio.current_time()
        found = await discover(
            request,
            core,
            design_code=design,
            concurrency=settings.discovery_concurrency,
            named_controls=settings.named_controls,
            batch=batch,
        )
        # An incomplete design is stored without its code, so the next connection discovers
        # again and picks up the components that failed this time.
        complete = not found.failed
        store.replace_design(
            core, design if complete else None, found.components, found.controls, found.values
        )
        log.info(
            "core.discovered",
            core=core,
            design_code=design,
            components=len(found.components),
            controls=len(found.controls),
            failed=len(found.failed),
            duration_ms=round((trio.current_time() - started) * 1000),
        )
        return True

    async def subscribe(
        self,
        settings: SessionSettings,
        request: Requester,
        on_push: Callable[[int], None],
        batch: BatchRequester | None = None,
        in_reader: ReaderBatchRequester | None = None,
    ) -> None:
        """Follow every control the store holds for the Core; wait (bounded) for first values."""
        core, store = settings.core, settings.store
        plan = {
            component: [info.ref.name for info in infos]
            for component, infos in store.control_infos(core).items()
            if infos
        }
        subscription = Subscription(
            core,
            self.connection,
            store,
            request=request,
            batch=batch,
            in_reader=in_reader,
            poll_rate=settings.poll_rate,
            max_groups=settings.max_change_groups,
            concurrency=settings.discovery_concurrency,
            kinds=store.kinds(core),
            on_push=on_push,
        )
        self.subscription = subscription
        try:
            await subscription.start(plan)
        except CoreError as exc:
            if not isinstance(exc, QrcError):
                raise
            # e.g. no change group left: serve requests anyway, values will not follow.
            log.error("core.subscription_failed", core=core, error=str(exc))
        with trio.move_on_after(settings.prime_timeout):
            await subscription.wait_primed()

    def end(self, reason: str) -> None:
        """Stop the session's work; a subscribed connection is closed with it."""
        self.scope.cancel()
        if self.subscription is not None:
            self.subscription.close()
            # groups left on a connection that stays open would count against its limit of 4
            if not self.connection.closed:
                self.connection.close(TransportError(f"session ended: {reason}"))
