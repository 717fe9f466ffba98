"""Fraud detection: flag an account when a tiny transaction is followed by a large one.

Flink's fraud-detection walkthrough as a flinkcore job: a KeyedProcessFunction per account keeps
a ValueState flag ("the last transaction was under $1") and an event-time timer that clears the
flag one minute later; a transaction over $500 while the flag is set raises an alert.
Transactions are generated (DataGeneratorSource), so the job is bounded and reproducible.

Run: ``python python/fraud_detection.py [N_TRANSACTIONS]`` (``make demo``).
"""

from __future__ import annotations

import sys
import time

from flinkcore.common import Duration, Types, WatermarkStrategy
from flinkcore.datastream import KeyedProcessFunction, SinkFunction, StreamExecutionEnvironment
from flinkcore.datastream.connectors import DataGeneratorSource
from flinkcore.datastream.state import ValueStateDescriptor

SMALL_AMOUNT = 1.00
LARGE_AMOUNT = 500.00
ONE_MINUTE = 60 * 1000
ACCOUNTS = 1_000


def transaction(i: int) -> tuple[int, float, int]:
    """The i-th transaction: (account, amount, timestamp ms), from a cheap deterministic hash."""
    h = (i * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    h = ((h ^ (h >> 31)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    h ^= h >> 29
    account = h % ACCOUNTS
    bucket = (h >> 12) % 1000
    if bucket < 20:
        amount = (h >> 22) % 100 / 100.0  # under $1: the "test" charge fraudsters start with
    elif bucket < 40:
        amount = 500.0 + (h >> 20) % 2000  # large
    else:
        amount = 1.0 + (h >> 16) % 20000 / 100.0
    return account, amount, i * 10  # a transaction every 10 ms of event time


class FraudDetector(KeyedProcessFunction):
    """Per account: small transaction, then a large one within a minute -> alert."""

    def open(self, runtime_context):
        self.flag = runtime_context.get_state(ValueStateDescriptor("flag", Types.BOOLEAN()))
        self.timer = runtime_context.get_state(ValueStateDescriptor("timer", Types.LONG()))

    def process_element(self, value, ctx):
        account, amount, ts = value
        deadline = self.timer.value()
        if deadline is not None and ts > deadline:
            # the clean-up timer is due but the watermark has not reached it yet: treat the flag
            # as expired, so the result does not depend on when watermarks happen to be emitted
            self._clean_up(ctx)
        if self.flag.value():
            if amount > LARGE_AMOUNT:
                yield f"ALERT account={account} amount={amount:.2f} at t={ts} ms"
            self._clean_up(ctx)
        if amount < SMALL_AMOUNT:
            self.flag.update(True)
            deadline = ctx.timestamp() + ONE_MINUTE
            ctx.timer_service().register_event_time_timer(deadline)
            self.timer.update(deadline)

    def on_timer(self, timestamp, ctx):
        self.flag.clear()
        self.timer.clear()

    def _clean_up(self, ctx):
        deadline = self.timer.value()
        if deadline is not None:
            ctx.timer_service().delete_event_time_timer(deadline)
        self.flag.clear()
        self.timer.clear()


class AlertSink(SinkFunction):
    def __init__(self, show: int = 10) -> None:
        self.alerts = 0
        self.show = show

    def invoke(self, value, context):
        self.alerts += 1
        if self.alerts <= self.show:
            print(value)


def main(n: int = 1_000_000) -> int:
    env = StreamExecutionEnvironment.get_execution_environment()
    sink = AlertSink()
    (
        env.from_source(
            DataGeneratorSource(transaction, count=n),
            WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_seconds(1)).with_timestamp_assigner(
                lambda t, _: t[2]
            ),
            "transactions",
        )
        .key_by(lambda t: t[0])
        .process(FraudDetector())
        .name("fraud-detector")
        .add_sink(sink)
    )
    start = time.perf_counter()
    env.execute("fraud detection")
    elapsed = time.perf_counter() - start
    if sink.alerts > sink.show:
        print(f"... {sink.alerts - sink.show} more alerts")
    print(
        f"{n:,} transactions, {sink.alerts:,} alerts in {elapsed:.2f} s: "
        f"{n / elapsed:,.0f} transactions/s (one core, keyed state + timers in Python)"
    )
    return sink.alerts


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
