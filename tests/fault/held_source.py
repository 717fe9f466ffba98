"""A generator source that waits for the test halfway through: the fault tests' guard against
a job that ends before the test acted on it.

A test that kills a worker or stops a job with a savepoint acts on a *running* job. With a
rate-limited source alone, a machine slow enough (a loaded CI runner) lets the job finish before
the kill or the savepoint lands, and the test then fails for the wrong reason. Each subtask of
:class:`HeldGenerator` stops halfway through its range until the file ``gate`` exists (polls
return nothing meanwhile, so checkpoints go on); the test opens the gate once it acted."""

from __future__ import annotations

import os
from typing import Any

from flinkcore.datastream.connectors.datagen import DataGeneratorSource
from flinkcore.runtime.sources import SourceReader


class HeldGenerator(DataGeneratorSource):
    def __init__(self, fn: Any, count: int, records_per_second: float | None, gate: str) -> None:
        super().__init__(fn, count=count, records_per_second=records_per_second)
        self.gate = gate

    def create_reader(self, subtask_index: int, parallelism: int) -> SourceReader:
        return _HeldReader(super().create_reader(subtask_index, parallelism), self.gate)


class _HeldReader(SourceReader):
    def __init__(self, reader: Any, gate: str) -> None:
        self.reader = reader
        self.gate = gate
        self.before_hold = reader.remaining() // 2  # records to pass before waiting for the gate

    def open(self, context: Any) -> None:
        self.reader.open(context)

    def poll(self, max_records: int) -> Any:
        if self.before_hold > 0:
            max_records = min(max_records, self.before_hold)
        elif not os.path.exists(self.gate):
            return None
        got = self.reader.poll(max_records)
        if isinstance(got, tuple):
            self.before_hold -= len(got[0])
        return got

    def snapshot_state(self) -> Any:
        return self.reader.snapshot_state()

    def restore_state(self, state: Any) -> None:
        self.reader.restore_state(state)

    def close(self) -> None:
        self.reader.close()


def open_gate(gate: str) -> None:
    with open(gate, "w"):
        pass
