"""PostHog's per-project query rate limits: a burst window and a sustained window, with Retry-After."""

from __future__ import annotations

import pytest

from logpond.hogql.jobs import RateLimited, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_window_refuses_then_frees_a_place() -> None:
    """The 4th request within a minute of a 3-per-minute limit waits until the oldest leaves the window."""
    clock = Clock()
    limiter = RateLimiter([(3, 60.0)], clock=clock)
    for step in (0, 10, 20):
        clock.now = 1000.0 + step
        limiter.check(1)
    clock.now = 1030.0
    with pytest.raises(RateLimited) as refused:
        limiter.check(1)
    assert refused.value.retry_after == 30
    limiter.check(2)  # another project has its own budget
    clock.now = 1060.0
    limiter.check(1)


def test_sustained_window_applies_beside_the_burst() -> None:
    """Within the burst limit, the hourly limit still refuses once it is used up."""
    clock = Clock()
    limiter = RateLimiter([(10, 60.0), (4, 3600.0)], clock=clock)
    for minute in range(4):
        clock.now = 1000.0 + 120 * minute
        limiter.check(1)
    clock.now = 1000.0 + 600
    with pytest.raises(RateLimited) as refused:
        limiter.check(1)
    assert refused.value.retry_after == 3000
    assert "Expected available in 3000 seconds" in str(refused.value)


def test_zero_turns_a_limit_off() -> None:
    """A limit of 0 is no limit."""
    limiter = RateLimiter([(0, 60.0), (0, 3600.0)])
    for _ in range(1000):
        limiter.check(1)
