"""A user's own transactional sink (TwoPhaseCommitSinkFunction) is exactly-once across a failure
and restart, and sees each record's context."""

import json
import os
import uuid

from flinkcore.common import WatermarkStrategy
from flinkcore.common.restart_strategy import RestartStrategies
from flinkcore.datastream import StreamExecutionEnvironment
from flinkcore.datastream.connectors.datagen import DataGeneratorSource
from flinkcore.datastream.functions import MapFunction, TwoPhaseCommitSinkFunction


class JsonLinesSink(TwoPhaseCommitSinkFunction):
    """Each transaction is a hidden staging file; committing renames it into the table."""

    def __init__(self, directory):
        self.directory = directory
        self.handles = {}

    def begin_transaction(self):
        name = f".txn-{uuid.uuid4().hex}"
        self.handles[name] = open(os.path.join(self.directory, name), "w")
        return name

    def invoke(self, transaction, value, context):
        self.handles[transaction].write(
            json.dumps({"v": value, "wm": context.current_watermark() > 0}) + "\n"
        )

    def pre_commit(self, transaction):
        handle = self.handles.pop(transaction)
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()

    def commit(self, transaction):
        staged = os.path.join(self.directory, transaction)
        if os.path.exists(staged):  # idempotent: a restored job may commit again
            os.replace(staged, os.path.join(self.directory, transaction[1:] + ".jsonl"))

    def abort(self, transaction):
        handle = self.handles.pop(transaction, None)
        if handle is not None:
            handle.close()
        staged = os.path.join(self.directory, transaction)
        if os.path.exists(staged):
            os.remove(staged)


class FailOnce(MapFunction):
    def __init__(self):
        self.failed = False

    def map(self, value):
        if value == 1_500 and not self.failed:
            self.failed = True
            raise RuntimeError("injected")
        return value


def test_user_transactional_sink_is_exactly_once_across_a_restart(tmp_path):
    table = tmp_path / "table"
    table.mkdir()
    env = StreamExecutionEnvironment.get_execution_environment()
    env.enable_checkpointing(50)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(2, 0))
    source = DataGeneratorSource(lambda i: i, count=3_000, records_per_second=6_000)
    (
        env.from_source(source, WatermarkStrategy.no_watermarks(), "numbers")
        .map(FailOnce())
        .add_sink(JsonLinesSink(str(table)))
    )
    client = env.execute_async("transactional")
    client.get_job_execution_result().result(timeout=60)
    assert client._job.restarts == 1
    rows = [json.loads(line) for f in table.iterdir() if not f.name.startswith(".") for line in f.open()]
    # every record committed exactly once (a transaction pre-committed for a checkpoint that never
    # completed stays staged and invisible, as a lingering transaction does in Flink)
    assert sorted(r["v"] for r in rows) == list(range(3_000))
