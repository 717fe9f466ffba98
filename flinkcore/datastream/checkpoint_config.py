"""``CheckpointConfig``: checkpoint settings of a job (stored here; taking checkpoints is the
checkpoint issue's runtime part)."""

from __future__ import annotations

from enum import Enum
from typing import Any

from flinkcore.datastream.checkpointing_mode import CheckpointingMode

__all__ = ["CheckpointConfig", "ExternalizedCheckpointRetention"]


class ExternalizedCheckpointRetention(Enum):
    DELETE_ON_CANCELLATION = 0
    RETAIN_ON_CANCELLATION = 1
    NO_EXTERNALIZED_CHECKPOINTS = 2


class CheckpointConfig:
    def __init__(self) -> None:
        self.interval_ms = -1
        self.mode = CheckpointingMode.EXACTLY_ONCE
        self.storage_dir: str | None = None
        self.min_pause_ms = 0
        self.timeout_ms = 600_000
        self.max_concurrent = 1
        self.tolerable_failures = 0
        self.retention = ExternalizedCheckpointRetention.NO_EXTERNALIZED_CHECKPOINTS

    def is_checkpointing_enabled(self) -> bool:
        return self.interval_ms > 0

    def set_checkpoint_interval(self, checkpoint_interval: int) -> CheckpointConfig:
        if checkpoint_interval < 10:
            raise ValueError(f"checkpoint interval must be >= 10 ms, got {checkpoint_interval}")
        self.interval_ms = checkpoint_interval
        return self

    def get_checkpoint_interval(self) -> int:
        return self.interval_ms

    def set_checkpointing_mode(self, mode: CheckpointingMode) -> CheckpointConfig:
        self.mode = mode
        return self

    def get_checkpointing_mode(self) -> CheckpointingMode:
        return self.mode

    def set_min_pause_between_checkpoints(self, min_pause: int) -> CheckpointConfig:
        self.min_pause_ms = min_pause
        return self

    def set_checkpoint_timeout(self, timeout: int) -> CheckpointConfig:
        self.timeout_ms = timeout
        return self

    def set_max_concurrent_checkpoints(self, n: int) -> CheckpointConfig:
        self.max_concurrent = n
        return self

    def set_tolerable_checkpoint_failure_number(self, n: int) -> CheckpointConfig:
        self.tolerable_failures = n
        return self

    def set_externalized_checkpoint_retention(
        self, retention: ExternalizedCheckpointRetention
    ) -> CheckpointConfig:
        self.retention = retention
        return self

    enable_externalized_checkpoints = set_externalized_checkpoint_retention

    def set_checkpoint_storage_dir(self, checkpoint_path: str) -> CheckpointConfig:
        self.storage_dir = checkpoint_path
        return self

    def set_checkpoint_storage(self, storage: Any) -> CheckpointConfig:
        self.storage_dir = (
            getattr(storage, "path", None) or getattr(storage, "checkpoint_path", None) or str(storage)
        )
        return self

    def get_checkpoint_storage_dir(self) -> str | None:
        return self.storage_dir
