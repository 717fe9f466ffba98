"""Restart strategies: after a failure, whether to restart the job and after how long (Flink's).

A :class:`RestartPolicy` is pure logic over failure times, so it is tested without a job:
``on_failure(now_ms)`` returns the delay before the next attempt, or None to fail the job.
Defaults follow Flink: no restart without checkpointing; with checkpointing and no strategy
configured, exponential delay (1 s initial, x1.5, at most 1 min, reset after 1 h of running,
10% jitter).
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any

from flinkcore.common.configuration import parse_millis

__all__ = ["RestartPolicy", "restart_policy_from"]

_UNLIMITED = 2**31 - 1


class RestartPolicy:
    def on_failure(self, now_ms: int) -> int | None:
        """Delay in ms before restarting after a failure at ``now_ms``; None: give up."""
        raise NotImplementedError

    def describe(self) -> str:
        return type(self).__name__


class NoRestart(RestartPolicy):
    def on_failure(self, now_ms: int) -> int | None:
        return None

    def describe(self) -> str:
        return "no restart"


class FixedDelay(RestartPolicy):
    def __init__(self, attempts: int, delay_ms: int) -> None:
        self.attempts = attempts
        self.delay_ms = delay_ms
        self.restarts = 0

    def on_failure(self, now_ms: int) -> int | None:
        if self.restarts >= self.attempts:
            return None
        self.restarts += 1
        return self.delay_ms

    def describe(self) -> str:
        return f"fixed delay ({self.attempts} attempts, {self.delay_ms} ms)"


class FailureRate(RestartPolicy):
    """Restart unless more than ``max_failures`` failures fall within ``interval_ms``."""

    def __init__(self, max_failures: int, interval_ms: int, delay_ms: int) -> None:
        self.max_failures = max_failures
        self.interval_ms = interval_ms
        self.delay_ms = delay_ms
        self.failures: deque[int] = deque()

    def on_failure(self, now_ms: int) -> int | None:
        self.failures.append(now_ms)
        while self.failures and self.failures[0] <= now_ms - self.interval_ms:
            self.failures.popleft()
        if len(self.failures) > self.max_failures:
            return None
        return self.delay_ms

    def describe(self) -> str:
        return f"failure rate ({self.max_failures} per {self.interval_ms} ms, delay {self.delay_ms} ms)"


class ExponentialDelay(RestartPolicy):
    def __init__(
        self,
        initial_ms: int = 1_000,
        max_ms: int = 60_000,
        multiplier: float = 1.5,
        reset_threshold_ms: int = 3_600_000,
        jitter: float = 0.1,
        attempts: int = _UNLIMITED,
        rng: random.Random | None = None,
    ) -> None:
        self.initial_ms = initial_ms
        self.max_ms = max_ms
        self.multiplier = multiplier
        self.reset_threshold_ms = reset_threshold_ms
        self.jitter = jitter
        self.attempts = attempts
        self.rng = rng or random.Random()
        self.current_ms = 0
        self.restarts = 0
        self.last_failure_ms: int | None = None

    def on_failure(self, now_ms: int) -> int | None:
        if self.last_failure_ms is not None and now_ms - self.last_failure_ms >= self.reset_threshold_ms:
            self.current_ms, self.restarts = 0, 0
        self.last_failure_ms = now_ms
        if self.restarts >= self.attempts:
            return None
        self.restarts += 1
        self.current_ms = (
            self.initial_ms
            if self.current_ms == 0
            else min(int(self.current_ms * self.multiplier), self.max_ms)
        )
        spread = int(self.current_ms * self.jitter)
        return max(0, self.current_ms + (self.rng.randint(-spread, spread) if spread else 0))

    def describe(self) -> str:
        return f"exponential delay ({self.initial_ms}..{self.max_ms} ms, x{self.multiplier})"


def _ms(value: Any, default: int) -> int:
    """Milliseconds of a configuration value ('10 s', '500 ms', 1000), or the default."""
    return default if value is None else parse_millis(str(value))


def restart_policy_from(strategy: Any, config: dict[str, Any], checkpointing: bool) -> RestartPolicy:
    """The policy of a job: its RestartStrategyConfiguration if set, else the ``restart-strategy.*``
    configuration keys, else Flink's default for whether checkpointing is on."""
    if strategy is not None and strategy.kind != "fallback":
        kind = strategy.kind
        if kind == "none":
            return NoRestart()
        if kind == "fixed-delay":
            return FixedDelay(strategy.attempts, strategy.delay_ms)
        if kind == "failure-rate":
            return FailureRate(strategy.failure_rate, strategy.interval_ms, strategy.delay_ms)
        if kind == "exponential-delay":
            return ExponentialDelay(initial_ms=strategy.delay_ms or 1_000)
        raise ValueError(f"unknown restart strategy {kind!r}")
    get = config.get
    kind = (get("restart-strategy.type") or get("restart-strategy") or "").strip().lower()
    if kind in ("", "fallback"):
        return ExponentialDelay() if checkpointing else NoRestart()
    if kind in ("none", "off", "disable"):
        return NoRestart()
    if kind in ("fixed-delay", "fixeddelay"):
        return FixedDelay(
            int(get("restart-strategy.fixed-delay.attempts") or (_UNLIMITED if checkpointing else 1)),
            _ms(get("restart-strategy.fixed-delay.delay"), 1_000),
        )
    if kind in ("failure-rate", "failurerate"):
        return FailureRate(
            int(get("restart-strategy.failure-rate.max-failures-per-interval") or 1),
            _ms(get("restart-strategy.failure-rate.failure-rate-interval"), 60_000),
            _ms(get("restart-strategy.failure-rate.delay"), 1_000),
        )
    if kind in ("exponential-delay", "exponentialdelay"):
        prefix = "restart-strategy.exponential-delay."
        return ExponentialDelay(
            _ms(get(prefix + "initial-backoff"), 1_000),
            _ms(get(prefix + "max-backoff"), 60_000),
            float(get(prefix + "backoff-multiplier") or 1.5),
            _ms(get(prefix + "reset-backoff-threshold"), 3_600_000),
            float(get(prefix + "jitter-factor") or 0.1),
            int(get(prefix + "attempts-before-reset-backoff") or _UNLIMITED),
        )
    raise ValueError(
        f"unknown restart-strategy.type {kind!r}: use none, fixed-delay, failure-rate or exponential-delay"
    )
