import os
import threading
import time

import pandas as pd
import pyarrow as pa
import pytest

from flinkcore.common import Duration, Encoder, Row, WatermarkStrategy
from flinkcore.datastream import RuntimeExecutionMode, StreamExecutionEnvironment
from flinkcore.datastream.connectors import (
    BucketAssigner,
    DataGeneratorSource,
    FileSink,
    FileSource,
    NumberSequenceSource,
    OutputFileConfig,
    RollingPolicy,
    StreamFormat,
)


def env(p=1):
    e = StreamExecutionEnvironment.get_execution_environment()
    e.set_parallelism(p)
    return e


@pytest.mark.parametrize("p", [1, 3])
def test_number_sequence_source_is_inclusive_and_split(p):
    out = (
        env(p)
        .from_source(NumberSequenceSource(1, 1000), WatermarkStrategy.no_watermarks(), "n")
        .execute_and_collect()
    )
    assert sorted(out) == list(range(1, 1001))


@pytest.mark.parametrize("p", [1, 2])
def test_datagen_bounded_count(p):
    src = DataGeneratorSource(lambda i: (i % 7, i), count=500)
    out = env(p).from_source(src, WatermarkStrategy.no_watermarks(), "gen").execute_and_collect()
    assert sorted(v[1] for v in out) == list(range(500))


def test_datagen_rate_limit_is_respected():
    src = DataGeneratorSource(lambda i: i, count=100, records_per_second=1000)
    t0 = time.perf_counter()
    out = list(env().from_source(src, WatermarkStrategy.no_watermarks(), "gen").execute_and_collect())
    assert out == list(range(100))
    assert time.perf_counter() - t0 >= 0.08


def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines))


@pytest.mark.parametrize("p", [1, 2])
def test_file_source_reads_lines_of_files_and_directories(tmp_path, p):
    d = tmp_path / "in"
    d.mkdir()
    _write(d / "a.txt", ["a1", "a2"])
    _write(d / "b.txt", ["b1"])
    _write(d / ".hidden", ["x"])
    (d / "sub").mkdir()
    _write(d / "sub" / "c.txt", ["c1", "c2", "c3"])
    src = FileSource.for_record_stream_format(StreamFormat.text_line_format(), str(d)).build()
    out = env(p).from_source(src, WatermarkStrategy.no_watermarks(), "files").execute_and_collect()
    assert sorted(out) == ["a1", "a2", "b1", "c1", "c2", "c3"]


def test_read_text_file(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("hello\r\nworld\nlast-without-newline")
    assert list(env().read_text_file(str(f)).execute_and_collect()) == [
        "hello",
        "world",
        "last-without-newline",
    ]


def test_file_source_monitor_continuously_picks_up_new_files(tmp_path):
    d = tmp_path / "watch"
    d.mkdir()
    _write(d / "1.txt", ["one"])
    src = (
        FileSource.for_record_stream_format(StreamFormat.text_line_format(), str(d))
        .monitor_continuously(Duration.of_millis(20))
        .build()
    )
    it = env().from_source(src, WatermarkStrategy.no_watermarks(), "watch").execute_and_collect()
    got = []

    def read_two():
        for _ in range(2):
            got.append(next(it))

    reader = threading.Thread(target=read_two, daemon=True)
    reader.start()
    deadline = time.time() + 30
    while not got and time.time() < deadline:
        time.sleep(0.01)
    _write(d / "2.txt", ["two"])
    reader.join(30)
    it.close()
    assert got == ["one", "two"]


def test_missing_file_is_a_clear_error(tmp_path):
    src = FileSource.for_record_stream_format(StreamFormat.text_line_format(), str(tmp_path / "nope")).build()
    e = env()
    e.from_source(src, WatermarkStrategy.no_watermarks(), "files").print()
    with pytest.raises(FileNotFoundError, match="no such file or directory"):
        e.execute()


def _read_all(base):
    visible, hidden = [], []
    for root, _, files in os.walk(base):
        for f in files:
            (hidden if f.startswith(".") else visible).append(os.path.join(root, f))
    return visible, hidden


@pytest.mark.parametrize("p", [1, 2])
def test_file_sink_writes_every_record_once(tmp_path, p):
    out = tmp_path / "out"
    sink = (
        FileSink.for_row_format(str(out), Encoder.simple_string_encoder())
        .with_output_file_config(
            OutputFileConfig.builder().with_part_prefix("pre").with_part_suffix(".txt").build()
        )
        .with_rolling_policy(RollingPolicy.default_rolling_policy(part_size=200))
        .build()
    )
    e = env(p)
    e.from_source(NumberSequenceSource(1, 500), WatermarkStrategy.no_watermarks(), "n").sink_to(sink)
    e.execute()
    visible, hidden = _read_all(out)
    assert hidden == []  # every part file was finished
    assert len(visible) > 1  # rolled by size
    assert all(os.path.basename(f).startswith("pre-") and f.endswith(".txt") for f in visible)
    lines = [line for f in visible for line in open(f).read().splitlines()]
    assert sorted(int(x) for x in lines) == list(range(1, 501))


def test_file_sink_base_path_bucket_assigner(tmp_path):
    sink = (
        FileSink.for_row_format(str(tmp_path), Encoder.simple_string_encoder())
        .with_bucket_assigner(BucketAssigner.base_path_bucket_assigner())
        .build()
    )
    e = env()
    e.from_collection(["x", "y"]).sink_to(sink)
    e.execute()
    files = os.listdir(tmp_path)
    assert len(files) == 1 and open(tmp_path / files[0]).read() == "x\ny\n"


def test_from_arrow_and_from_pandas_give_named_rows():
    table = pa.table({"key": [1, 2, 3], "value": [0.5, 1.5, 2.5], "name": ["a", "b", "c"]})
    ds = env().from_arrow(table)
    assert ds.get_type().get_field_names() == ["key", "value", "name"]
    rows = list(ds.execute_and_collect())
    assert rows == [
        Row(key=1, value=0.5, name="a"),
        Row(key=2, value=1.5, name="b"),
        Row(key=3, value=2.5, name="c"),
    ]
    assert rows[0].key == 1 and rows[1]["name"] == "b"
    df = pd.DataFrame({"k": [1, 1, 2], "v": [1.0, 2.0, 3.0]})
    out = env().from_pandas(df).key_by("k").sum("v").execute_and_collect()
    assert [(r.k, r.v) for r in out] == [(1, 1.0), (1, 3.0), (2, 3.0)]


def test_map_batches_sees_record_batches():
    import pyarrow.compute as pc

    table = pa.table({"k": [1, 2, 3, 4], "v": [1.0, 2.0, 3.0, 4.0]})

    def double_even(batch):
        doubled = batch.set_column(1, "v", pc.multiply(batch.column(1), 2.0))
        return doubled.filter(pc.equal(pc.bit_wise_and(batch.column(0), 1), 0))

    out = env().from_arrow(table).map_batches(double_even).execute_and_collect()
    assert [(r.k, r.v) for r in out] == [(2, 4.0), (4, 8.0)]


def test_batch_mode_reads_bounded_files(tmp_path):
    f = tmp_path / "t.txt"
    _write(f, ["b", "a", "b"])
    e = env()
    e.set_runtime_mode(RuntimeExecutionMode.BATCH)
    out = e.read_text_file(str(f)).map(lambda w: (w, 1)).key_by(lambda t: t[0]).sum(1).execute_and_collect()
    assert sorted(out) == [("a", 1), ("b", 2)]
