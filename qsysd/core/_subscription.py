"""Change groups with AutoPoll on one connection, feeding the state store."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, overload

import structlog
import trio

from qsysd.core._discovery import BatchRequester, ReaderBatchRequester, Requester, each
from qsysd.core._wire import poll_from_wire
from qsysd.errors import ChangeGroupsExhausted, CoreError, InvalidReply, RequestTimeout
from qsysd.qrc import ErrorResponse, QrcConnection, Response, paused_collection
from qsysd.state import ControlRef, ControlValue, StateStore

__all__ = ["Subscription", "SubscriptionPlan"]

log = structlog.get_logger(__name__)

#: component name (None: named controls) -> the names of its controls to follow
SubscriptionPlan = Mapping[str | None, Sequence[str]]

_Item = tuple[str | None, tuple[str, ...]]


class _AddParams(Sequence[dict[str, Any]]):
    """The AddComponentControl params of each (group, item), built as each request is sent.

    Built all at once they would be one dict per control of the design (40,000), alive until
    the last add is answered and walked by the garbage collector meanwhile.
    """

    def __init__(self, targets: Sequence[tuple[str, _Item]]) -> None:
        self._targets = targets

    def __len__(self) -> int:
        return len(self._targets)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[dict[str, Any]]: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [Subscription._add_params(*target) for target in self._targets[index]]
        return Subscription._add_params(*self._targets[index])


class Subscription:
    """Follows controls through up to ``max_groups`` change groups on one connection.

    The Core allows 4 groups per connection; one is left free for on-demand use. When the
    Core answers error 5 (exhausted) the controls are spread over the groups that exist.

    AutoPoll starts as soon as the groups exist, before the rest of the controls are added:
    a newly added control counts as changed, so each push carries what was added since the
    last one. Started after the adds, its first push (or poll) would carry a third of a large
    design in one reply (13,000 controls, decoded at once 12 MiB above the store at the
    daemon's memory peak).
    """

    def __init__(
        self,
        core: str,
        connection: QrcConnection,
        store: StateStore,
        *,
        request: Requester | None = None,
        batch: BatchRequester | None = None,
        in_reader: ReaderBatchRequester | None = None,
        poll_rate: float = 0.1,
        max_groups: int = 3,
        batch_size: int = 256,
        concurrency: int = 8,
        kinds: Mapping[ControlRef, str] | None = None,
        on_push: Callable[[int], None] | None = None,
    ) -> None:
        self.core = core
        self.poll_rate = poll_rate
        self.max_groups = max(1, max_groups)
        self.batch_size = batch_size
        self.concurrency = concurrency
        self._connection = connection
        self._request: Requester = request or connection.request
        self._batch = batch  # the link's bulk path for the adds; else per request
        self._in_reader = in_reader  # the same, answers taken in the reader (first polls)
        self._store = store
        self._kinds = kinds or {}
        self._on_push = on_push
        self.groups: list[str] = []
        self._pushed: set[str] = set()
        self._primed = trio.Event()
        self._adding = False  # pushes meanwhile answer for part of the controls only
        self._unsubscribe: Callable[[], None] | None = None
        self.pushes = 0
        self.values_pushed = 0

    def group_id(self, index: int) -> str:
        return f"qsysd-{self.core}-{index + 1}"

    async def start(self, plan: SubscriptionPlan) -> None:
        """Create the groups, add every control in batches, then start AutoPoll."""
        items: list[_Item] = []
        for component, names in plan.items():
            names = tuple(names)
            for i in range(0, len(names), self.batch_size):
                items.append((component, names[i : i + self.batch_size]))
        if not items:
            self._primed.set()
            return
        self._unsubscribe = self._connection.on_notification("ChangeGroup.Poll", self._pushed_to)
        wanted = min(self.max_groups, len(items))
        self._adding = True
        # Create groups one by one (the first add creates a group) to learn how many we get.
        for index in range(wanted):
            group = self.group_id(index)
            try:
                await self._add(group, items[index])
            except ChangeGroupsExhausted:
                if index == 0:
                    raise ChangeGroupsExhausted(
                        f'Core "{self.core}" has no change group left (error 5): live values '
                        "are not followed; free groups on the Core or restart other clients"
                    ) from None
                log.warning("core.change_groups_degraded", core=self.core, wanted=wanted, got=index)
                break
            self.groups.append(group)
        for group in self.groups:
            await self._request("ChangeGroup.AutoPoll", {"Id": group, "Rate": self.poll_rate})
        rest = items[len(self.groups) :]
        count = len(self.groups)
        targets = [(self.groups[n % count], item) for n, item in enumerate(rest)]
        for group, item in targets:
            if item[0] is None:  # named controls: one AddControl per batch of names
                await self._add(group, item)
        requests = self._batch or each(self._request, self.concurrency)
        refused: list[CoreError] = []

        def on_answer(index: int, answer: Any) -> None:
            if isinstance(answer, CoreError):
                refused.append(answer)

        components = [(group, item) for group, item in targets if item[0] is not None]
        await requests("ChangeGroup.AddComponentControl", _AddParams(components), on_answer)
        if refused:  # an error answer fails the subscription, as before
            raise refused[0]
        self._adding = False
        # Every control is followed now; the next push comes within a poll interval. A Poll
        # now gets what was added since the last push at once, so the Core is live sooner.
        # Taken in the reader, in order with the pushes: a push read after a poll's reply
        # carries newer values than the reply, and must not be overwritten by it.
        polls = [{"Id": group} for group in self.groups]
        try:
            if self._in_reader is not None:
                await self._in_reader("ChangeGroup.Poll", polls, self._first_poll)
            else:
                await self._connection.request_batch(
                    "ChangeGroup.Poll", polls, self._first_polled, in_reader=True
                )
        except RequestTimeout as exc:  # the next push will do; the keepalive probes the Core
            log.debug("core.first_poll_unanswered", core=self.core, error=str(exc))

    def _first_polled(self, index: int, reply: Response | ErrorResponse, latency: float) -> None:
        self._first_poll(
            index, reply.to_exception() if isinstance(reply, ErrorResponse) else reply.result
        )

    def _first_poll(self, index: int, answer: Any) -> None:
        group = self.groups[index]
        try:
            if isinstance(answer, CoreError):
                raise answer
            with paused_collection():  # a first poll answers every control: one burst
                polled, values = poll_from_wire(self.core, answer, self._kinds)
                if polled == group:
                    self._take(group, values)
        except (CoreError, InvalidReply) as exc:  # the next push will do
            log.debug("core.first_poll_unanswered", core=self.core, group=group, error=str(exc))

    async def _add(self, group: str, item: _Item) -> None:
        component, names = item
        if component is None:
            await self._request("ChangeGroup.AddControl", {"Id": group, "Controls": list(names)})
        else:
            await self._request("ChangeGroup.AddComponentControl", self._add_params(group, item))

    @staticmethod
    def _add_params(group: str, item: _Item) -> dict[str, Any]:
        component, names = item
        return {
            "Id": group,
            "Component": {"Name": component, "Controls": [{"Name": n} for n in names]},
        }

    async def wait_primed(self) -> None:
        """Wait until every group has been polled once since its last control was added (the
        poll after the adds answered, or a push read): the Core has then reported every
        control followed."""
        await self._primed.wait()

    def close(self) -> None:
        """Stop feeding the store (the Core drops the groups with the connection)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    async def destroy(self, timeout: float) -> None:  # noqa: ASYNC109 -- best effort, bounded
        """Destroy the groups on a connection that stays open (e.g. before re-subscribing)."""
        self.close()
        with trio.move_on_after(timeout):
            for group in self.groups:
                try:
                    await self._request("ChangeGroup.Destroy", {"Id": group})
                except CoreError as exc:
                    log.debug("core.change_group_destroy_failed", core=self.core, error=str(exc))

    def _pushed_to(self, params: Any) -> None:
        with paused_collection():  # a push after a discovery can carry every control
            self._take_push(params)

    def _take_push(self, params: Any) -> None:
        group, values = poll_from_wire(self.core, params, self._kinds)
        if group is None or group not in self.groups:
            return  # another client's group, or one we destroyed
        self.pushes += 1
        self.values_pushed += len(values)
        self._take(group, values)
        if self._on_push is not None:
            self._on_push(len(values))

    def _take(self, group: str, values: list[ControlValue]) -> None:
        """A poll of ``group`` answered (pushed, or polled at the start)."""
        if values:
            self._store.apply(values)
        if self._adding:
            return  # not every control is followed yet: nothing to confirm, not primed
        # The Core answered this group's poll: every value it follows is confirmed as is.
        self._store.confirm(self.core)
        if not self._primed.is_set():
            self._pushed.add(group)
            if len(self._pushed) == len(self.groups):
                self._primed.set()
