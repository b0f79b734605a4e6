"""systemd: notify datagrams reach a real AF_UNIX socket; socket-activation fds are checked."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from qsysd._systemd import check_activation, claim_listen_fds, notify, watchdog_interval
from qsysd.config import HttpConfig
from qsysd.errors import ConfigError


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


def test_a_zero_watchdog_timeout_means_no_watchdog() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None


def test_listen_fds_for_this_process_are_claimed_and_the_variables_removed() -> None:
    env = {"LISTEN_FDS": "2", "LISTEN_PID": str(os.getpid()), "LISTEN_FDNAMES": "a:b", "X": "1"}
    # Claiming only marks fds 3 and 4 non-inheritable (skipping one that is not open).
    assert claim_listen_fds(env) == [3, 4]
    assert env == {"X": "1"}


def test_listen_fds_for_another_process_are_not_claimed_but_still_removed() -> None:
    env = {"LISTEN_FDS": "1", "LISTEN_PID": "1"}
    assert claim_listen_fds(env) == [] and env == {}
    assert claim_listen_fds({}) == []


def test_an_fd_that_systemd_did_not_pass_is_a_config_error() -> None:
    http = HttpConfig(enabled=True, listen=["fd://3", "fd://5"])
    with pytest.raises(ConfigError, match=r"fd://5 was not passed by systemd, which passed fd://3"):
        check_activation(http, [3])
    check_activation(http, [])  # another supervisor's fds: the front end checks the socket
    check_activation(HttpConfig(enabled=True, listen="fd://4"), [3, 4])
