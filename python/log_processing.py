"""Log processing / streaming ETL: parse access-log lines, route bad lines to a dead-letter side
output, count requests per status class, and write clean records to a FileSink.

Reads every ``*.log`` under a directory (``FileSource``, bounded here; add
``.monitor_continuously(Duration.of_seconds(1))`` to follow a directory forever).

Run: ``python python/log_processing.py [INPUT_DIR] [OUTPUT_DIR]`` — without arguments it writes
a small sample log to a temp dir first.
"""

from __future__ import annotations

import os
import sys
import tempfile

from flinkcore.common import Encoder, Row, Types, WatermarkStrategy
from flinkcore.datastream import OutputTag, ProcessFunction, RuntimeExecutionMode, StreamExecutionEnvironment
from flinkcore.datastream.connectors import BucketAssigner, FileSink, FileSource, StreamFormat

DEAD_LETTERS = OutputTag("dead-letters", Types.STRING())


class ParseAccessLog(ProcessFunction):
    """``<epoch ms> <method> <path> <status> <bytes>`` -> Row; anything else -> dead letters."""

    def process_element(self, line, ctx):
        parts = line.split()
        if len(parts) != 5 or not parts[0].isdigit() or not parts[3].isdigit():
            yield DEAD_LETTERS, line
            return
        ts, method, path, status, size = parts
        yield Row(
            ts=int(ts), method=method, path=path, status=int(status), bytes=int(size) if size.isdigit() else 0
        )


def write_sample(directory: str) -> None:
    lines = [
        "1700000000000 GET /index.html 200 5120",
        "1700000000100 GET /missing 404 0",
        "1700000000200 POST /api/orders 201 312",
        "garbage line that is not a request",
        "1700000000300 GET /api/orders 500 0",
        "1700000000400 GET /index.html 200 5120",
    ]
    with open(os.path.join(directory, "access.log"), "w") as f:
        f.write("\n".join(lines) + "\n")


def build(env: StreamExecutionEnvironment, input_dir: str, output_dir: str):
    lines = env.from_source(
        FileSource.for_record_stream_format(StreamFormat.text_line_format(), input_dir).build(),
        WatermarkStrategy.no_watermarks(),
        "access logs",
    )
    requests = lines.process(ParseAccessLog()).name("parse")
    requests.sink_to(
        FileSink.for_row_format(output_dir, Encoder.simple_string_encoder())
        .with_bucket_assigner(BucketAssigner.base_path_bucket_assigner())
        .build()
    ).name("clean records")
    per_class = (
        requests.map(lambda r: (f"{r.status // 100}xx", 1))
        .key_by(lambda t: t[0])
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
        .name("requests per status class")
    )
    return per_class, requests.get_side_output(DEAD_LETTERS)


def main(input_dir: str | None = None, output_dir: str | None = None) -> tuple[list, list]:
    if input_dir is None:
        input_dir = tempfile.mkdtemp(prefix="flinkcore-logs-")
        write_sample(input_dir)
    output_dir = output_dir or tempfile.mkdtemp(prefix="flinkcore-clean-")
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_runtime_mode(RuntimeExecutionMode.BATCH)  # bounded input: final counts only
    per_class, dead = build(env, input_dir, output_dir)
    collected: dict[str, list] = {"counts": [], "dead": []}
    per_class.add_sink(collected["counts"].append)
    dead.add_sink(collected["dead"].append)
    env.execute("log processing")
    counts = sorted(collected["counts"])
    for status_class, n in counts:
        print(f"{status_class}: {n} requests")
    for line in collected["dead"]:
        print(f"dead letter: {line!r}")
    print(f"clean records written under {output_dir}")
    return counts, collected["dead"]


if __name__ == "__main__":
    main(*sys.argv[1:3])
