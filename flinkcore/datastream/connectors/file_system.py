"""File sources and sinks (``pyflink.datastream.connectors.file_system`` names).

``FileSource``: lines of text files. Bounded by default (the files present when the job
starts, split over subtasks by file); ``monitor_continuously(interval)`` makes it unbounded:
every interval it lists the paths again and reads files it has not seen. Hidden files (``.`` or
``_`` prefixes) are skipped, as Flink's default file filter does.

``FileSink`` row format, exactly-once (Flink's two-phase commit): every record is encoded and
appended to a hidden in-progress part file ``.<prefix>-<uid>-<subtask>-<n><suffix>.inprogress``
in its bucket directory. A part file rolls by size, age or inactivity, and at every checkpoint;
rolled files are hidden ``.pending`` files until the checkpoint that covers them completes, then
they are renamed to ``<prefix>-<uid>-<subtask>-<n><suffix>``. A bounded job commits at its end.
Unlike Flink's row format, an in-progress file is not resumed across a checkpoint: each
checkpoint closes it, which costs a file per checkpoint and bucket but never a partial line.
Without checkpointing, an unbounded job's files stay pending, as in Flink.
"""

from __future__ import annotations

import datetime
import os
import time
import uuid
import zlib
from typing import Any

from flinkcore.common.time import Duration, to_millis
from flinkcore.common.typeinfo import Types
from flinkcore.datastream.functions import TwoPhaseCommitSinkFunction
from flinkcore.runtime.operators.two_phase_commit import TwoPhaseCommitSinkOperator
from flinkcore.runtime.sources import END, Source, SourceReader

__all__ = ["BucketAssigner", "FileSink", "FileSource", "OutputFileConfig", "RollingPolicy", "StreamFormat"]


# -- source ------------------------------------------------------------------------------------
class StreamFormat:
    """How a file's bytes become records: ``text_line_format()`` gives its lines."""

    def __init__(self, charset: str = "UTF-8") -> None:
        self.charset = charset

    @staticmethod
    def text_line_format(charset_name: str = "UTF-8") -> StreamFormat:
        return StreamFormat(charset_name)


def _visible(name: str) -> bool:
    return not (name.startswith(".") or name.startswith("_"))


def _list_files(paths: list[str]) -> list[str]:
    out = []
    for p in paths:
        p = p[len("file://") :] if p.startswith("file://") else p
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if _visible(d))
                out.extend(os.path.join(root, f) for f in sorted(files) if _visible(f))
        elif os.path.exists(p):
            out.append(p)
        else:
            raise FileNotFoundError(f"FileSource: no such file or directory: {p}")
    return out


def _owner(path: str, parallelism: int) -> int:
    """The subtask that reads file ``path``."""
    return zlib.crc32(path.encode()) % parallelism


class _LineReader(SourceReader):
    def __init__(self, source: FileSource, index: int, parallelism: int) -> None:
        self.source = source
        self.index = index
        self.parallelism = parallelism
        self.seen: set[str] = set()
        self.pending: list[str] = []
        self.current: Any = None
        self.current_path: str | None = None
        self.offset = 0  # lines read of the current file
        #: pending file -> lines of it read before a restored snapshot
        self.skip: dict[str, int] = {}
        self.next_scan = 0.0
        self.charset = source.format.charset

    def _mine(self, path: str) -> bool:
        return _owner(path, self.parallelism) == self.index

    def _scan(self) -> None:
        for f in _list_files(self.source.paths):
            if f not in self.seen and self._mine(f):
                self.seen.add(f)
                self.pending.append(f)

    def open(self, context: Any) -> None:
        self._scan()
        self.next_scan = time.monotonic() + (self.source.interval_ms or 0) / 1000

    def poll(self, max_records: int):
        while True:
            if self.current is not None:
                lines = []
                for _ in range(max_records):
                    line = self.current.readline()
                    if not line:
                        break
                    lines.append(line.rstrip("\r\n") if line.endswith("\n") else line)
                if lines:
                    self.offset += len(lines)
                    return lines, None
                self.current.close()
                self.current = None
                self.current_path = None
                self.offset = 0
            if self.pending:
                self.current_path = self.pending.pop(0)
                self.current = open(self.current_path, encoding=self.charset, newline="")
                self.offset = self.skip.pop(self.current_path, 0)
                for _ in range(self.offset):  # lines read before the snapshot this reader restored
                    self.current.readline()
                continue
            if self.source.interval_ms is None:
                return END
            now = time.monotonic()
            if now < self.next_scan:
                return None
            self.next_scan = now + self.source.interval_ms / 1000
            self._scan()
            if not self.pending:
                return None

    def snapshot_state(self) -> Any:
        return {
            "seen": sorted(self.seen),
            "pending": list(self.pending),
            "current": self.current_path,
            "offset": self.offset,
            "skip": dict(self.skip),
        }

    def restore_state(self, state: Any) -> None:
        self.seen = set(state["seen"])
        self.pending = list(state["pending"])
        self.skip = dict(state.get("skip", {}))
        if state["current"]:  # read on from where it was (the next poll opens it and skips)
            self.pending.insert(0, state["current"])
            self.skip[state["current"]] = state["offset"]

    def close(self) -> None:
        if self.current is not None:
            self.current.close()


class FileSource(Source):
    parallel = True

    def __init__(self, paths: list[str], fmt: StreamFormat, interval_ms: int | None) -> None:
        self.paths = [os.fspath(p) for p in paths]
        self.format = fmt
        self.interval_ms = interval_ms
        self.bounded = interval_ms is None
        self.type_info = Types.STRING()

    @staticmethod
    def for_record_stream_format(stream_format: StreamFormat, *paths: str) -> FileSource.FileSourceBuilder:
        if not paths:
            raise ValueError("FileSource needs at least one path")
        return FileSource.FileSourceBuilder(list(paths), stream_format)

    def create_reader(self, subtask_index: int, parallelism: int) -> SourceReader:
        return _LineReader(self, subtask_index, parallelism)

    def rescale_states(self, states: list, parallelism: int) -> list:
        """The files the readers had not finished (with the lines read of each), given to their
        owners at ``parallelism`` (the same rule by path as new files); every reader knows every
        file any reader had seen, so none is read again."""
        seen: set[str] = set()
        unfinished: list[tuple[str, int]] = []
        for state in states:
            if state is None:
                continue
            seen.update(state["seen"])
            skip = state.get("skip", {})
            if state["current"]:
                unfinished.append((state["current"], state["offset"]))
            unfinished += [(path, skip.get(path, 0)) for path in state["pending"]]
        new = [
            {"seen": sorted(seen), "pending": [], "current": None, "offset": 0, "skip": {}}
            for _ in range(parallelism)
        ]
        for path, read in unfinished:
            state = new[_owner(path, parallelism)]
            state["pending"].append(path)
            if read:
                state["skip"][path] = read
        return new

    class FileSourceBuilder:
        def __init__(self, paths: list[str], fmt: StreamFormat) -> None:
            self.paths = paths
            self.fmt = fmt
            self.interval_ms: int | None = None

        def monitor_continuously(self, discovery_interval: Duration | int) -> FileSource.FileSourceBuilder:
            ms = to_millis(discovery_interval, "discovery_interval")
            if ms <= 0:
                raise ValueError(f"discovery interval must be positive, got {ms} ms")
            self.interval_ms = ms
            return self

        def process_static_file_set(self) -> FileSource.FileSourceBuilder:
            self.interval_ms = None
            return self

        def set_file_enumerator(self, *args: Any) -> FileSource.FileSourceBuilder:
            return self

        def set_split_assigner(self, *args: Any) -> FileSource.FileSourceBuilder:
            return self

        def build(self) -> FileSource:
            return FileSource(self.paths, self.fmt, self.interval_ms)


# -- sink --------------------------------------------------------------------------------------
class OutputFileConfig:
    def __init__(self, part_prefix: str = "part", part_suffix: str = "") -> None:
        self.part_prefix = part_prefix
        self.part_suffix = part_suffix

    def get_part_prefix(self) -> str:
        return self.part_prefix

    def get_part_suffix(self) -> str:
        return self.part_suffix

    @staticmethod
    def builder() -> OutputFileConfig.OutputFileConfigBuilder:
        return OutputFileConfig.OutputFileConfigBuilder()

    class OutputFileConfigBuilder:
        def __init__(self) -> None:
            self.prefix = "part"
            self.suffix = ""

        def with_part_prefix(self, prefix: str) -> OutputFileConfig.OutputFileConfigBuilder:
            self.prefix = prefix
            return self

        def with_part_suffix(self, suffix: str) -> OutputFileConfig.OutputFileConfigBuilder:
            self.suffix = suffix
            return self

        def build(self) -> OutputFileConfig:
            return OutputFileConfig(self.prefix, self.suffix)


class RollingPolicy:
    """When a part file is closed and a new one started."""

    def __init__(
        self,
        part_size: int,
        rollover_interval_ms: int,
        inactivity_interval_ms: int,
        on_checkpoint: bool = False,
    ) -> None:
        self.part_size = part_size
        self.rollover_interval_ms = rollover_interval_ms
        self.inactivity_interval_ms = inactivity_interval_ms
        self.on_checkpoint = on_checkpoint

    @staticmethod
    def default_rolling_policy(
        part_size: int = 1024 * 1024 * 128,
        rollover_interval: int = 60 * 1000,
        inactivity_interval: int = 60 * 1000,
    ) -> RollingPolicy:
        return RollingPolicy(part_size, to_millis(rollover_interval), to_millis(inactivity_interval))

    @staticmethod
    def on_checkpoint_rolling_policy() -> RollingPolicy:
        return RollingPolicy(1 << 62, 1 << 62, 1 << 62, on_checkpoint=True)


class BucketAssigner:
    """Which sub-directory (bucket) of the base path a record goes to."""

    def __init__(self, kind: str, fmt: str = "%Y-%m-%d--%H", tz: Any = None) -> None:
        self.kind = kind
        self.fmt = fmt
        self.tz = tz

    @staticmethod
    def base_path_bucket_assigner() -> BucketAssigner:
        return BucketAssigner("base")

    @staticmethod
    def date_time_bucket_assigner(
        format_str: str = "yyyy-MM-dd--HH", timezone_id: str | None = None
    ) -> BucketAssigner:
        fmt = (
            format_str.replace("yyyy", "%Y")
            .replace("MM", "%m")
            .replace("dd", "%d")
            .replace("HH", "%H")
            .replace("mm", "%M")
            .replace("ss", "%S")
        )
        return BucketAssigner("datetime", fmt, timezone_id)

    def bucket_id(self, now_ms: int) -> str:
        if self.kind == "base":
            return ""
        tz = datetime.timezone.utc if self.tz in ("UTC", "utc") else None
        return datetime.datetime.fromtimestamp(now_ms / 1000, tz).strftime(self.fmt)


class _Part:
    """One part file being written: hidden ``.<name>.inprogress`` until its transaction is
    pre-committed (``.<name>.pending``), visible as ``<name>`` once committed."""

    def __init__(self, directory: str, name: str) -> None:
        self.directory = directory
        self.name = name
        self.file = open(os.path.join(directory, f".{name}.inprogress"), "wb")
        self.size = 0
        self.created = self.last_write = int(time.time() * 1000)


def _part_paths(directory: str, name: str) -> tuple[str, str, str]:
    return (
        os.path.join(directory, f".{name}.inprogress"),
        os.path.join(directory, f".{name}.pending"),
        os.path.join(directory, name),
    )


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _FileSinkWriter(TwoPhaseCommitSinkFunction):
    """The transactional writer of one FileSink subtask. A transaction is the list of part files
    (``[directory, name]``) written since the last checkpoint; pre-commit closes, fsyncs and marks
    them pending, commit renames them to their visible names (idempotently)."""

    def __init__(self, sink: FileSink) -> None:
        self.sink = sink
        self.parts: dict[str, _Part] = {}  # bucket -> open part
        self.counter = 0
        self.uid = uuid.uuid4().hex
        self.subtask = 0

    def open(self, runtime_context: Any) -> None:
        self.subtask = runtime_context.get_index_of_this_subtask()
        os.makedirs(self.sink.base_path, exist_ok=True)

    def begin_transaction(self) -> list:
        return []

    def _part(self, bucket: str, txn: list) -> _Part:
        part = self.parts.get(bucket)
        if part is None:
            directory = os.path.join(self.sink.base_path, bucket) if bucket else self.sink.base_path
            os.makedirs(directory, exist_ok=True)
            cfg = self.sink.output_config
            name = f"{cfg.part_prefix}-{self.uid}-{self.subtask}-{self.counter}{cfg.part_suffix}"
            self.counter += 1
            part = self.parts[bucket] = _Part(directory, name)
            txn.append([directory, name])
        return part

    def _roll(self, bucket: str) -> None:
        """Close a part file; it stays hidden until its transaction commits."""
        part = self.parts.pop(bucket)
        part.file.flush()
        os.fsync(part.file.fileno())
        part.file.close()
        inprogress, pending, _ = _part_paths(part.directory, part.name)
        os.replace(inprogress, pending)

    def invoke(self, transaction: list, value: Any, context: Any) -> None:
        self.invoke_batch(transaction, [value])

    def invoke_batch(self, transaction: list, values: list) -> None:
        now = int(time.time() * 1000)
        policy = self.sink.rolling_policy
        encode = self.sink.encoder.encode
        data = [encode(v) for v in values]
        for bucket_name, part in list(self.parts.items()):
            if (
                now - part.created >= policy.rollover_interval_ms
                or now - part.last_write >= policy.inactivity_interval_ms
            ):
                self._roll(bucket_name)
        bucket = self.sink.bucket_assigner.bucket_id(now)
        part = self._part(bucket, transaction)
        for d in data:
            part.file.write(d)
            part.size += len(d)
            if part.size >= policy.part_size:
                self._roll(bucket)
                part = self._part(bucket, transaction)
        part.last_write = now

    def pre_commit(self, transaction: list) -> None:
        for bucket in list(self.parts):
            self._roll(bucket)
        for directory in {d for d, _ in transaction}:
            _fsync_dir(directory)

    def commit(self, transaction: list) -> None:
        for directory, name in transaction:
            _, pending, final = _part_paths(directory, name)
            if os.path.exists(pending):
                os.replace(pending, final)
        for directory in {d for d, _ in transaction}:
            _fsync_dir(directory)

    def abort(self, transaction: list) -> None:
        for bucket, part in list(self.parts.items()):
            if [part.directory, part.name] in transaction:
                part.file.close()
                del self.parts[bucket]
        for directory, name in transaction:
            inprogress, pending, _ = _part_paths(directory, name)
            for path in (inprogress, pending):
                if os.path.exists(path):
                    os.remove(path)


class FileSink:
    """``FileSink.for_row_format(path, Encoder.simple_string_encoder()).build()``."""

    name = "FileSink"

    def __init__(
        self,
        base_path: str,
        encoder: Any,
        output_config: OutputFileConfig,
        rolling_policy: RollingPolicy,
        bucket_assigner: BucketAssigner,
    ) -> None:
        self.base_path = base_path[len("file://") :] if base_path.startswith("file://") else base_path
        self.encoder = encoder
        self.output_config = output_config
        self.rolling_policy = rolling_policy
        self.bucket_assigner = bucket_assigner

    @staticmethod
    def for_row_format(base_path: str, encoder: Any) -> FileSink.RowFormatBuilder:
        if not callable(getattr(encoder, "encode", None)):
            raise TypeError(
                f"for_row_format takes an Encoder (Encoder.simple_string_encoder()), got {encoder!r}"
            )
        return FileSink.RowFormatBuilder(os.fspath(base_path), encoder)

    @staticmethod
    def for_bulk_format(base_path: str, writer_factory: Any) -> Any:
        raise NotImplementedError("FileSink bulk formats (Parquet ...) come with the formats issue")

    def create_operator(self) -> TwoPhaseCommitSinkOperator:
        return TwoPhaseCommitSinkOperator(_FileSinkWriter(self), self.name)

    class RowFormatBuilder:
        def __init__(self, base_path: str, encoder: Any) -> None:
            self.base_path = base_path
            self.encoder = encoder
            self.output_config = OutputFileConfig()
            self.rolling_policy = RollingPolicy.default_rolling_policy()
            self.bucket_assigner = BucketAssigner.date_time_bucket_assigner()

        def with_output_file_config(self, output_file_config: OutputFileConfig) -> FileSink.RowFormatBuilder:
            self.output_config = output_file_config
            return self

        def with_rolling_policy(self, rolling_policy: RollingPolicy) -> FileSink.RowFormatBuilder:
            self.rolling_policy = rolling_policy
            return self

        def with_bucket_assigner(self, bucket_assigner: BucketAssigner) -> FileSink.RowFormatBuilder:
            self.bucket_assigner = bucket_assigner
            return self

        def with_bucket_check_interval(self, interval: int) -> FileSink.RowFormatBuilder:
            return self

        def build(self) -> FileSink:
            return FileSink(
                self.base_path, self.encoder, self.output_config, self.rolling_policy, self.bucket_assigner
            )
