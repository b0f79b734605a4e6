"""Backoff with full jitter, and the circuit breaker on trio's clock."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from qsysd.config import CoreConfig
from qsysd.core import Backoff, BreakerState, CircuitBreaker


def test_backoff_ceiling_doubles_up_to_the_cap() -> None:
    backoff = Backoff(initial=0.5, maximum=30.0, random=lambda: 1.0)
    delays = [backoff.next_delay() for _ in range(10)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]


def test_backoff_full_jitter_draws_between_zero_and_the_ceiling() -> None:
    draws = iter([0.0, 0.25, 0.999])
    backoff = Backoff(initial=1.0, maximum=10.0, random=lambda: next(draws))
    assert backoff.next_delay() == 0.0
    assert backoff.next_delay() == pytest.approx(0.5)
    assert backoff.next_delay() == pytest.approx(3.996)


def test_backoff_survives_a_very_long_outage() -> None:
    backoff = Backoff(random=lambda: 1.0)
    for _ in range(5000):
        assert backoff.next_delay() <= 2.0


async def reconnect_wait_after_return(outage: float, seed: int) -> float:
    """On trio's clock: a Core down for ``outage`` s; how long after its return until the
    link's reconnect loop (attempt, then sleep the next delay) tries again and succeeds."""
    config = CoreConfig(name="main", host="core")
    backoff = Backoff(
        initial=config.reconnect_initial,
        maximum=config.reconnect_max,
        random=random.Random(seed).random,
    )
    down_at = trio.current_time()
    back_at = down_at + outage
    while trio.current_time() < back_at:  # noqa: ASYNC110 -- Endpoint.run's loop, modelled
        await trio.sleep(backoff.next_delay())  # a refused connect fails at once on a LAN
    return trio.current_time() - back_at


@pytest.mark.parametrize("outage", [0.5, 5.0, 30.0, 123.4, 600.0])
def test_default_backoff_tries_again_within_2_s_p95_of_a_return_after_any_outage(
    outage: float,
) -> None:
    # 2 s leaves a second of the 3 s recovery target for connect, logon and subscribe
    waits = sorted(
        trio.run(
            reconnect_wait_after_return,
            outage,
            seed,
            clock=trio.testing.MockClock(autojump_threshold=0),
        )
        for seed in range(200)
    )
    assert waits[int(len(waits) * 0.95)] <= 2.0
    assert waits[-1] <= CoreConfig(name="main", host="core").reconnect_max


def test_backoff_resets_only_after_a_healthy_session() -> None:
    backoff = Backoff(initial=0.5, maximum=30.0, healthy_after=10.0, random=lambda: 1.0)
    for _ in range(5):
        backoff.next_delay()
    backoff.note_session(2.0)
    assert backoff.ceiling == 16.0
    backoff.note_session(10.0)
    assert backoff.ceiling == 0.5


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Backoff(initial=0.0)
    with pytest.raises(ValueError):
        Backoff(initial=5.0, maximum=1.0)


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def test_breaker_opens_after_consecutive_failures(clock: trio.testing.MockClock) -> None:
    breaker = CircuitBreaker(failure_threshold=3, cool_down=10.0)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    breaker.record_success()  # not consecutive any more
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_in() == pytest.approx(10.0)
    assert breaker.times_opened == 1


async def test_breaker_half_opens_after_cool_down_for_one_probe(
    clock: trio.testing.MockClock,
) -> None:
    breaker = CircuitBreaker(failure_threshold=1, cool_down=10.0)
    breaker.record_failure()
    await trio.sleep(9.9)
    assert breaker.state is BreakerState.OPEN
    await trio.sleep(0.1)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()  # one probe at a time
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()


async def test_failed_probe_opens_the_breaker_again(clock: trio.testing.MockClock) -> None:
    breaker = CircuitBreaker(failure_threshold=1, cool_down=5.0)
    breaker.record_failure()
    await trio.sleep(5.0)
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_in() == pytest.approx(5.0)
    assert breaker.times_opened == 2


async def test_abandoned_probe_lets_the_next_one_through(clock: trio.testing.MockClock) -> None:
    breaker = CircuitBreaker(failure_threshold=1, cool_down=1.0)
    breaker.record_failure()
    await trio.sleep(1.0)
    assert breaker.allow()
    breaker.record_abandoned()
    assert breaker.allow()
