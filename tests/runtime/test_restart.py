"""Restart policies as pure logic: when to restart and after how long (Flink's strategies)."""

import random

import pytest

from flinkcore.common.restart_strategy import RestartStrategies
from flinkcore.runtime.restart import (
    ExponentialDelay,
    FailureRate,
    FixedDelay,
    NoRestart,
    restart_policy_from,
)


def test_fixed_delay_gives_up_after_its_attempts():
    policy = FixedDelay(2, 500)
    assert [policy.on_failure(t) for t in (0, 10, 20)] == [500, 500, None]


def test_failure_rate_counts_failures_within_the_interval():
    policy = FailureRate(max_failures=2, interval_ms=1_000, delay_ms=5)
    assert policy.on_failure(0) == 5
    assert policy.on_failure(100) == 5
    assert policy.on_failure(200) is None  # a third failure within one second
    policy = FailureRate(2, 1_000, 5)
    assert [policy.on_failure(t) for t in (0, 600, 1_200, 1_800)] == [5, 5, 5, 5]


def test_exponential_delay_grows_caps_and_resets():
    policy = ExponentialDelay(initial_ms=100, max_ms=400, multiplier=2, reset_threshold_ms=10_000, jitter=0)
    assert [policy.on_failure(t) for t in (0, 1, 2, 3, 4)] == [100, 200, 400, 400, 400]
    assert policy.on_failure(20_000) == 100  # ran long enough since the last failure


def test_exponential_delay_jitter_stays_within_its_factor():
    policy = ExponentialDelay(initial_ms=1_000, jitter=0.1, rng=random.Random(1))
    delay = policy.on_failure(0)
    assert 900 <= delay <= 1_100


def test_policy_from_strategy_objects_and_configuration():
    assert isinstance(restart_policy_from(None, {}, checkpointing=False), NoRestart)
    assert isinstance(restart_policy_from(None, {}, checkpointing=True), ExponentialDelay)
    fixed = restart_policy_from(RestartStrategies.fixed_delay_restart(3, 10), {}, checkpointing=True)
    assert isinstance(fixed, FixedDelay) and (fixed.attempts, fixed.delay_ms) == (3, 10)
    conf = {
        "restart-strategy.type": "failure-rate",
        "restart-strategy.failure-rate.max-failures-per-interval": "3",
        "restart-strategy.failure-rate.failure-rate-interval": "5 min",
        "restart-strategy.failure-rate.delay": "10 s",
    }
    rate = restart_policy_from(None, conf, checkpointing=False)
    assert (rate.max_failures, rate.interval_ms, rate.delay_ms) == (3, 300_000, 10_000)
    conf = {"restart-strategy.type": "fixed-delay", "restart-strategy.fixed-delay.attempts": "2"}
    assert restart_policy_from(None, conf, checkpointing=False).attempts == 2
    with pytest.raises(ValueError, match="unknown restart-strategy.type"):
        restart_policy_from(None, {"restart-strategy.type": "sometimes"}, checkpointing=False)
