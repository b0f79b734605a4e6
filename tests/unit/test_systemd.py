"""systemd notify: datagrams reach a real AF_UNIX socket; a no-op without systemd."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from qsysd._systemd import notify, watchdog_interval


def test_notify_sends_datagram_to_notify_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(5)
        assert notify("READY=1", env={"NOTIFY_SOCKET": str(path)})
        assert server.recv(64) == b"READY=1"


def test_notify_without_systemd_is_a_no_op() -> None:
    assert notify("READY=1", env={}) is False


def test_notify_to_a_missing_socket_does_not_raise(tmp_path: Path) -> None:
    assert notify("READY=1", env={"NOTIFY_SOCKET": str(tmp_path / "gone")}) is False


def test_watchdog_interval_is_half_the_timeout() -> None:
    env = {"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_interval(env) == 5.0
    assert watchdog_interval({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({}) is None
