"""Built-in sinks: print to stdout and collect into the caller (``execute_and_collect``)."""

from __future__ import annotations

import queue
import sys
import threading
from typing import Any

from flinkcore.runtime.operators.base import AbstractStreamOperator

__all__ = ["CollectSinkOperator", "PrintSinkOperator"]


class _SinkBase(AbstractStreamOperator):
    def process_watermark(self, watermark: int) -> None:
        if watermark > self.current_watermark:
            self.current_watermark = watermark

    def process_watermark_status(self, idle: bool) -> None:
        pass

    def end_input(self) -> None:
        pass


class PrintSinkOperator(_SinkBase):
    """Flink's PrintSinkFunction: ``identifier:subtask> value`` prefixes as Flink prints them."""

    def __init__(self, sink_identifier: str | None = None, stream: Any = None) -> None:
        super().__init__("Print to Std. Out")
        self.identifier = sink_identifier
        self.stream = stream

    def open(self) -> None:
        prefix = self.identifier or ""
        if self.context.parallelism > 1:
            prefix = (prefix + ":" if prefix else "") + str(self.context.subtask_index + 1)
        self.prefix = prefix + "> " if prefix else ""

    def process_batch(self, values: list, timestamps: list | None) -> None:
        out = self.stream or sys.stdout
        prefix = self.prefix
        out.write("".join(f"{prefix}{v}\n" for v in values))
        out.flush()


class CollectSinkOperator(_SinkBase):
    """Hands every batch to a queue the caller's iterator reads (bounded: backpressure)."""

    def __init__(self, channel: queue.Queue, cancelled: threading.Event) -> None:
        super().__init__("Collect Sink")
        self.channel = channel
        self.cancelled = cancelled

    def process_batch(self, values: list, timestamps: list | None) -> None:
        while not self.cancelled.is_set():
            try:
                self.channel.put(values, timeout=0.05)
                return
            except queue.Full:
                continue
