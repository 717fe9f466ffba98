"""``flinkcore.sinks-in-driver: false``: sinks run in the task slots at their parallelism."""

from __future__ import annotations

import os

from flinkcore.common.configuration import Configuration
from flinkcore.datastream import StreamExecutionEnvironment
from flinkcore.datastream.connectors.file_system import BucketAssigner, FileSink


class PidEncoder:
    """Writes each value with the id of the process that runs the sink."""

    def encode(self, value) -> bytes:
        return f"{value}:{os.getpid()}\n".encode()


def _run(out_dir: str, sinks_in_driver: str | None) -> list[str]:
    conf = Configuration()
    conf.set_string("execution.runtime", "processes")
    if sinks_in_driver is not None:
        conf.set_string("flinkcore.sinks-in-driver", sinks_in_driver)
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(2)
    (
        env.from_collection(list(range(1000)))
        .map(lambda x: x * 2)
        .sink_to(
            FileSink.for_row_format(out_dir, PidEncoder())
            .with_bucket_assigner(BucketAssigner.base_path_bucket_assigner())
            .build()
        )
    )
    env.execute("sinks in slots")
    return [f for f in os.listdir(out_dir) if not f.startswith(".")]


def _lines(out_dir: str, files: list[str]) -> list[str]:
    lines = []
    for name in files:
        with open(os.path.join(out_dir, name)) as f:
            lines += f.read().splitlines()
    return lines


def test_sinks_run_in_the_slots_when_asked(tmp_path):
    out = str(tmp_path / "slots")
    files = _run(out, "false")
    lines = _lines(out, files)
    assert sorted(int(line.split(":")[0]) for line in lines) == list(range(0, 2000, 2))
    # each of the two sink subtasks wrote its own part files, each in its own worker process
    assert {name.split("-")[-2] for name in files} == {"0", "1"}
    pids = {line.split(":")[1] for line in lines}
    assert len(pids) == 2 and str(os.getpid()) not in pids


def test_by_default_sinks_run_in_the_driver(tmp_path):
    out = str(tmp_path / "driver")
    lines = _lines(out, _run(out, None))
    assert sorted(int(line.split(":")[0]) for line in lines) == list(range(0, 2000, 2))
    assert {line.split(":")[1] for line in lines} == {str(os.getpid())}
