"""systemd integration without a dependency: notifications, the watchdog, socket activation.

Notifications are one ``AF_UNIX``/``SOCK_DGRAM`` datagram to ``$NOTIFY_SOCKET`` per message
(``READY=1``, ``STATUS=...``, ``WATCHDOG=1``, ``STOPPING=1``, several separated by newlines);
a no-op when the daemon does not run under systemd. Socket activation hands over listening
sockets from fd 3 on, with ``$LISTEN_FDS`` and ``$LISTEN_PID`` saying how many and for whom.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING

import trio

from qsysd.config import HttpConfig, parse_listen_address
from qsysd.errors import ConfigError
from qsysd.logs import get_logger

if TYPE_CHECKING:
    from qsysd.core import CoreLink

__all__ = ["CoreStatusLine", "check_activation", "claim_listen_fds", "notify", "watchdog_interval"]

log = get_logger("qsysd.daemon")

#: The first descriptor systemd passes (``SD_LISTEN_FDS_START``).
LISTEN_FDS_START = 3
#: A wedged systemd must not stall the trio loop for long; a lost STATUS= is harmless.
_SEND_TIMEOUT = 1.0
_STATUS_ERROR_CHARS = 120  # STATUS= is one line in `systemctl status`


def notify(message: str, *, env: dict[str, str] | None = None) -> bool:
    """Send ``READY=1``, ``WATCHDOG=1``, ``STOPPING=1``, ``STATUS=...``; True when sent."""
    address = (os.environ if env is None else env).get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.settimeout(_SEND_TIMEOUT)
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError:
        return False
    return True


def watchdog_interval(env: dict[str, str] | None = None) -> float | None:
    """Half the watchdog timeout systemd asked for, in seconds, or None without a watchdog."""
    env = dict(os.environ if env is None else env)
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000


def claim_listen_fds(env: MutableMapping[str, str] | None = None) -> list[int]:
    """The sockets systemd passed to this process; the variables are removed from ``env``.

    Like ``sd_listen_fds(1)``: once claimed, a child process (a plugin's helper) does not see
    ``LISTEN_FDS`` and cannot take the sockets for its own; the descriptors are not inherited.
    Sockets passed to another process (``LISTEN_PID`` is not ours) are not claimed.
    """
    env = os.environ if env is None else env
    count = env.pop("LISTEN_FDS", None)
    pid = env.pop("LISTEN_PID", None)
    env.pop("LISTEN_FDNAMES", None)
    if count is None or not count.isdigit() or pid != str(os.getpid()):
        return []
    fds = list(range(LISTEN_FDS_START, LISTEN_FDS_START + int(count)))
    for fd in fds:
        try:
            os.set_inheritable(fd, False)
        except OSError:  # reported, with the config key, when http.listen names it
            continue
    return fds


def check_activation(http: HttpConfig, passed: Sequence[int]) -> None:
    """With sockets from systemd, every ``fd://N`` in ``http.listen`` must be one of them."""
    if not passed:
        return  # fd:// from another supervisor (or none): the front end checks the socket
    named = (
        [a.fd for a in map(parse_listen_address, http.listen_addresses()) if a.kind == "fd"]
        if http.enabled
        else []
    )
    given = ", ".join(f"fd://{fd}" for fd in passed)
    for fd in named:
        if fd not in passed:
            raise ConfigError(
                [
                    f"http.listen: fd://{fd} was not passed by systemd, which passed {given} "
                    "(one per ListenStream= of the socket unit, in order)"
                ]
            )
    unused = [fd for fd in passed if fd not in named]
    if unused:
        log.warning(
            "daemon.sockets_unused",
            fds=unused,
            hint=f"systemd passed {given}; name each in http.listen (and set http.enabled)",
        )


class CoreStatusLine:
    """``STATUS=`` for ``systemctl status``: the last Core event, and how many Cores serve."""

    def __init__(self, links: Mapping[str, CoreLink]) -> None:
        self._links = links

    def text(self, event: str) -> str:
        serving = sum(link.connected for link in self._links.values())
        return f"{event}; {serving}/{len(self._links)} Cores serving"

    def ready(self, missing: Sequence[str]) -> str:
        """The status at ``READY=1``, naming each Core missing and why."""
        if not missing:
            return self.text("ready")
        why = ", ".join(f"{name} ({self._problem(name)})" for name in missing)
        return self.text(f"ready without Core(s) {why}")

    def _problem(self, name: str) -> str:
        error = " ".join((self._links[name].status().last_error or "not connected yet").split())
        if len(error) > _STATUS_ERROR_CHARS:
            error = error[: _STATUS_ERROR_CHARS - 3] + "..."
        return error

    async def follow(self) -> None:
        """Send ``STATUS=`` on each Core's connect, loss, reconnect and failover; never ends."""
        notify(f"STATUS=starting: waiting for Core(s) {', '.join(self._links)}")
        async with trio.open_nursery() as nursery:
            for link in self._links.values():
                nursery.start_soon(self._follow, link)

    async def _follow(self, link: CoreLink) -> None:
        address: str | None = None
        while True:
            await link.wait_connected()
            now = link.active_address
            if address is None:
                event = f"Core {link.name} connected ({now})"
            elif now != address:
                event = f"Core {link.name} failed over to {now}"
            else:
                event = f"Core {link.name} reconnected ({now})"
            address = now
            notify(f"STATUS={self.text(event)}")
            await link.wait_disconnected()
            notify(f"STATUS={self.text(f'Core {link.name} lost ({self._problem(link.name)})')}")
