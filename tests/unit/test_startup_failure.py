"""How serve and demo put a start-up failure into one line (qsysd.daemon.startup_failure)."""

from __future__ import annotations

import errno

import trio

from qsysd.daemon import startup_failure
from qsysd.errors import StartupError


def test_a_port_in_use_inside_nested_groups_is_one_line() -> None:
    exc = OSError(errno.EADDRINUSE, "Address already in use")
    group = ExceptionGroup("outer", [ExceptionGroup("inner", [exc])])
    assert startup_failure(group) == (
        "cannot run: address already in use: another process listens there"
    )


def test_a_startup_error_wins_over_the_cancellations_around_it() -> None:
    cancelled = trio.Cancelled._create()  # type: ignore[attr-defined]
    group = BaseExceptionGroup("g", [cancelled, StartupError("state.dir: cannot\nbe created")])
    assert startup_failure(group) == "state.dir: cannot be created"


def test_secrets_are_replaced_in_the_line() -> None:
    exc = StartupError("redis://u:hunter2@host failed")
    assert startup_failure(exc, ["hunter2"]) == "redis://u:***@host failed"


def test_a_bug_is_not_a_startup_failure() -> None:
    assert startup_failure(ExceptionGroup("g", [KeyError("x")])) is None
    assert startup_failure(KeyboardInterrupt()) is None
