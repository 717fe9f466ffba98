"""``RestartStrategies``: what happens after a failure (Flink's restart strategies).

The configurations are accepted here; restarting needs checkpoints to restart from, which come
with the checkpoint issue — until then executing a job with a restarting strategy raises a
clear NotImplementedError instead of silently not restarting.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RestartStrategies", "RestartStrategyConfiguration"]


@dataclass(frozen=True)
class RestartStrategyConfiguration:
    kind: str
    attempts: int = 0
    delay_ms: int = 0
    failure_rate: int = 0
    interval_ms: int = 0

    def get_description(self) -> str:
        return f"{self.kind} (attempts={self.attempts}, delay={self.delay_ms} ms)"

    @property
    def restarts(self) -> bool:
        return self.kind not in ("none", "fallback")


class RestartStrategies:
    @staticmethod
    def no_restart() -> RestartStrategyConfiguration:
        return RestartStrategyConfiguration("none")

    @staticmethod
    def fall_back_restart() -> RestartStrategyConfiguration:
        return RestartStrategyConfiguration("fallback")

    @staticmethod
    def fixed_delay_restart(
        restart_attempts: int, delay_between_attempts: int
    ) -> RestartStrategyConfiguration:
        return RestartStrategyConfiguration("fixed-delay", restart_attempts, _ms(delay_between_attempts))

    @staticmethod
    def failure_rate_restart(
        failure_rate: int, failure_interval: int, delay_interval: int
    ) -> RestartStrategyConfiguration:
        return RestartStrategyConfiguration(
            "failure-rate", 0, _ms(delay_interval), failure_rate, _ms(failure_interval)
        )

    @staticmethod
    def exponential_delay_restart(
        initial_backoff: int,
        max_backoff: int,
        backoff_multiplier: float,
        reset_backoff_threshold: int,
        jitter_factor: float,
    ) -> RestartStrategyConfiguration:
        return RestartStrategyConfiguration("exponential-delay", 0, _ms(initial_backoff))


def _ms(v) -> int:
    return int(getattr(v, "millis", v))
