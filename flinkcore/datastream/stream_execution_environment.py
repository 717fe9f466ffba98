"""``StreamExecutionEnvironment``: configures a job, creates sources, and executes.

It records transformations (see :mod:`flinkcore.datastream.transformations`), translates them
into a :class:`~flinkcore.runtime.graph.StreamGraph` and hands that to the in-process executor
(:mod:`flinkcore.runtime.executor`). ``execute()`` runs on the calling thread; ``execute_async``
and ``execute_and_collect`` run the job on a background thread of this process.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any

from flinkcore.cli import ENV_PARALLELISM, ENV_REGISTER_JOB, ENV_SAVEPOINT_PATH
from flinkcore.common.configuration import Configuration, parse_millis
from flinkcore.common.job_execution_result import JobExecutionResult
from flinkcore.common.restart_strategy import RestartStrategyConfiguration
from flinkcore.common.typeinfo import RowTypeInfo, TupleTypeInfo
from flinkcore.common.types import Row, row_class
from flinkcore.datastream.checkpoint_config import CheckpointConfig, ExternalizedCheckpointRetention
from flinkcore.datastream.checkpointing_mode import CheckpointingMode
from flinkcore.datastream.data_stream import DataStream
from flinkcore.datastream.execution_mode import RuntimeExecutionMode
from flinkcore.datastream.state_backend import StateBackend, backend_from_type
from flinkcore.datastream.transformations import (
    OneInputTransformation,
    SourceTransformation,
    Transformation,
    generate_stream_graph,
)
from flinkcore.runtime.checkpointing import CheckpointSettings
from flinkcore.runtime.execution import JobExecution
from flinkcore.runtime.graph import StreamGraph
from flinkcore.runtime.restart import restart_policy_from
from flinkcore.runtime.sources import CollectionSource

__all__ = ["ExecutionConfig", "JobClient", "JobStatus", "StreamExecutionEnvironment"]


class ExecutionConfig:
    """``env.get_config()``: auto watermark interval and friends."""

    def __init__(self) -> None:
        self.auto_watermark_interval = 200
        self.global_job_parameters: dict[str, str] = {}
        self.object_reuse = False

    def set_auto_watermark_interval(self, interval: int) -> ExecutionConfig:
        if interval < 0:
            raise ValueError(f"auto watermark interval must be >= 0 ms, got {interval}")
        self.auto_watermark_interval = int(interval)
        return self

    def get_auto_watermark_interval(self) -> int:
        return self.auto_watermark_interval

    def set_global_job_parameters(self, params: Any) -> ExecutionConfig:
        self.global_job_parameters = dict(params.to_dict() if hasattr(params, "to_dict") else params)
        return self

    def get_global_job_parameters(self) -> dict[str, str]:
        return dict(self.global_job_parameters)

    def enable_object_reuse(self) -> ExecutionConfig:
        self.object_reuse = True
        return self

    def disable_object_reuse(self) -> ExecutionConfig:
        self.object_reuse = False
        return self

    def is_object_reuse_enabled(self) -> bool:
        return self.object_reuse


class JobStatus:
    """Flink's job states (strings compare equal to their names)."""

    CREATED = "CREATED"
    RUNNING = "RUNNING"
    FAILING = "FAILING"
    FAILED = "FAILED"
    CANCELLING = "CANCELLING"
    CANCELED = "CANCELED"
    FINISHED = "FINISHED"


class JobClient:
    """Handle of a job started with ``execute_async``."""

    def __init__(self, job: JobExecution, thread: threading.Thread, result: Future) -> None:
        self._job = job
        self._thread = thread
        self._result = result

    def get_job_id(self) -> str:
        return self._job.job_id

    def get_job_status(self) -> Future:
        f: Future = Future()
        f.set_result(self._job.status)
        return f

    def cancel(self) -> Future:
        """Stop the job; the returned future completes when it stopped."""
        self._job.cancel()
        f: Future = Future()

        def wait() -> None:
            self._thread.join()
            f.set_result(None)

        threading.Thread(target=wait, daemon=True).start()
        return f

    def get_job_execution_result(self) -> Future:
        return self._result

    def trigger_savepoint(self, savepoint_directory: str, *args: Any) -> Future:
        """A savepoint in a new directory under ``savepoint_directory``; the future's result is its path."""
        return self._job.trigger_savepoint(os.fspath(savepoint_directory))

    def stop_with_savepoint(self, savepoint_directory: str, *args: Any) -> Future:
        """Take a savepoint, commit it, and stop the job; the future's result is the savepoint path."""
        return self._job.stop_with_savepoint(os.fspath(savepoint_directory))


class CloseableIterator:
    """Results of ``execute_and_collect``; re-raises a job failure in the caller."""

    _DONE = object()

    def __init__(
        self, channel: queue.Queue, job: JobExecution, thread: threading.Thread, errors: list
    ) -> None:
        self._channel = channel
        self._job = job
        self._thread = thread
        self._errors = errors
        self._buffer: list = []
        self._pos = 0
        self._finished = False

    def __iter__(self) -> CloseableIterator:
        return self

    def __next__(self) -> Any:
        while self._pos >= len(self._buffer):
            if self._finished:
                raise StopIteration
            item = self._channel.get()
            if item is CloseableIterator._DONE:
                self._finished = True
                self._thread.join()
                if self._errors:
                    raise self._errors[0]
                raise StopIteration
            self._buffer, self._pos = item, 0
        v = self._buffer[self._pos]
        self._pos += 1
        return v

    def close(self) -> None:
        if not self._finished:
            self._job.cancel()
            self._finished = True
            self._thread.join()

    def __enter__(self) -> CloseableIterator:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


#: Configuration keys under this prefix (two-phase aggregation's switches and numbers) travel in
#: the job graph's config as they are, for the runtime
_RUNTIME_PREFIX = "execution.window.two-phase-aggregation"


def _signal_done(channel: queue.Queue, cancelled: threading.Event) -> None:
    """Tell the collecting iterator the job ended (drop results if the reader went away)."""
    while True:
        try:
            channel.put(CloseableIterator._DONE, timeout=0.05)
            return
        except queue.Full:
            if cancelled.is_set():
                try:
                    channel.get_nowait()
                except queue.Empty:
                    pass


class StreamExecutionEnvironment:
    """Entry point of a job (``pyflink.datastream.StreamExecutionEnvironment``)."""

    def __init__(self, configuration: Configuration | None = None) -> None:
        self._configuration = Configuration(configuration) if configuration is not None else Configuration()
        self._transformations: list[Transformation] = []
        self._config = ExecutionConfig()
        self._checkpoint_config = CheckpointConfig()
        self._parallelism = 1
        self._max_parallelism = 128
        self._runtime_mode = RuntimeExecutionMode.STREAMING
        self._buffer_timeout = 100
        self._state_backend: StateBackend | None = None
        self._restart_strategy: RestartStrategyConfiguration | None = None
        self._batch_size: int | None = None
        self._apply_configuration(self._configuration)
        if os.environ.get(ENV_PARALLELISM):
            self.set_parallelism(int(os.environ[ENV_PARALLELISM]))

    @staticmethod
    def get_execution_environment(configuration: Configuration | None = None) -> StreamExecutionEnvironment:
        """A new environment (configured by ``configuration`` and ``flinkcore run`` options)."""
        return StreamExecutionEnvironment(configuration)

    def _apply_configuration(self, conf: Configuration) -> None:
        get = conf.get_string
        if get("parallelism.default"):
            self.set_parallelism(int(get("parallelism.default")))
        if get("pipeline.max-parallelism"):
            self.set_max_parallelism(int(get("pipeline.max-parallelism")))
        if get("execution.runtime-mode"):
            mode = get("execution.runtime-mode").strip().upper()
            if mode not in RuntimeExecutionMode.__members__:
                raise ValueError(f"execution.runtime-mode must be STREAMING or BATCH, got {mode!r}")
            self.set_runtime_mode(RuntimeExecutionMode[mode])
        if get("pipeline.auto-watermark-interval"):
            self._config.set_auto_watermark_interval(parse_millis(get("pipeline.auto-watermark-interval")))
        if get("execution.buffer-timeout"):
            self.set_buffer_timeout(parse_millis(get("execution.buffer-timeout")))
        if get("state.backend.type") or get("state.backend"):
            self.set_state_backend(backend_from_type(get("state.backend.type") or get("state.backend")))
        if get("execution.checkpointing.interval"):
            self._checkpoint_config.set_checkpoint_interval(
                parse_millis(get("execution.checkpointing.interval"))
            )
        if get("execution.checkpointing.dir") or get("state.checkpoints.dir"):
            self._checkpoint_config.set_checkpoint_storage_dir(
                get("execution.checkpointing.dir") or get("state.checkpoints.dir")
            )
        if get("flinkcore.batch-size"):
            self._batch_size = int(get("flinkcore.batch-size"))

    # -- configuration ------------------------------------------------------------------------
    def get_config(self) -> ExecutionConfig:
        return self._config

    def get_configuration(self) -> Configuration:
        return self._configuration

    def configure(self, configuration: Configuration) -> StreamExecutionEnvironment:
        self._configuration.add_all(configuration)
        self._apply_configuration(configuration)
        return self

    def set_parallelism(self, parallelism: int) -> StreamExecutionEnvironment:
        if not isinstance(parallelism, int) or parallelism < 1:
            raise ValueError(f"parallelism must be a positive int, got {parallelism!r}")
        self._parallelism = parallelism
        return self

    def get_parallelism(self) -> int:
        return self._parallelism

    def set_max_parallelism(self, max_parallelism: int) -> StreamExecutionEnvironment:
        if not 0 < max_parallelism <= 32768:
            raise ValueError(f"max parallelism must be in [1, 32768], got {max_parallelism}")
        self._max_parallelism = max_parallelism
        return self

    def get_max_parallelism(self) -> int:
        return self._max_parallelism

    def set_runtime_mode(self, execution_mode: RuntimeExecutionMode) -> StreamExecutionEnvironment:
        if not isinstance(execution_mode, RuntimeExecutionMode):
            raise TypeError(f"expected a RuntimeExecutionMode, got {execution_mode!r}")
        self._runtime_mode = execution_mode
        return self

    def set_buffer_timeout(self, timeout_millis: int) -> StreamExecutionEnvironment:
        """Longest a record waits in a buffer; -1 means flush only when full (we flush each loop)."""
        self._buffer_timeout = int(timeout_millis)
        return self

    def set_stream_time_characteristic(self, characteristic: Any) -> StreamExecutionEnvironment:
        """Deprecated in Flink and without effect: event time is always available."""
        return self

    def get_stream_time_characteristic(self) -> Any:
        from flinkcore.datastream.time_characteristic import TimeCharacteristic

        return TimeCharacteristic.EventTime

    def get_buffer_timeout(self) -> int:
        return self._buffer_timeout

    def enable_checkpointing(
        self, interval: int, mode: CheckpointingMode = CheckpointingMode.EXACTLY_ONCE
    ) -> StreamExecutionEnvironment:
        self._checkpoint_config.set_checkpoint_interval(interval)
        self._checkpoint_config.set_checkpointing_mode(mode)
        return self

    def get_checkpoint_config(self) -> CheckpointConfig:
        return self._checkpoint_config

    def get_checkpoint_interval(self) -> int:
        return self._checkpoint_config.interval_ms

    def get_checkpointing_mode(self) -> CheckpointingMode:
        return self._checkpoint_config.mode

    def is_checkpointing_enabled(self) -> bool:
        return self._checkpoint_config.is_checkpointing_enabled()

    def set_state_backend(self, state_backend: StateBackend) -> StreamExecutionEnvironment:
        if not callable(getattr(state_backend, "create_keyed_state_backend", None)):
            raise TypeError(f"expected a state backend (HashMapStateBackend ...), got {state_backend!r}")
        self._state_backend = state_backend
        return self

    def get_state_backend(self) -> StateBackend | None:
        return self._state_backend

    def set_restart_strategy(self, restart_strategy_configuration: RestartStrategyConfiguration) -> None:
        self._restart_strategy = restart_strategy_configuration

    def get_restart_strategy(self) -> RestartStrategyConfiguration | None:
        return self._restart_strategy

    # PyFlink's dependency management: everything already runs in this Python process.
    def add_python_file(self, file_path: str) -> None:
        pass

    def set_python_requirements(
        self, requirements_file_path: str, requirements_cache_dir: str | None = None
    ) -> None:
        pass

    def add_python_archive(self, archive_path: str, target_dir: str | None = None) -> None:
        pass

    def set_python_executable(self, python_exec: str) -> None:
        pass

    def add_jars(self, *jars_path: str) -> None:
        pass

    def add_classpaths(self, *classpaths: str) -> None:
        pass

    # -- sources ------------------------------------------------------------------------------
    def _add_transformation(self, t: Transformation) -> None:
        self._transformations.append(t)

    def _source(self, source: Any, name: str, type_info: Any = None) -> DataStream:
        t = SourceTransformation(name, source, type_info)
        self._add_transformation(t)
        return DataStream(self, t)

    def from_collection(self, collection: Any, type_info: Any = None) -> DataStream:
        """The items of a list (or any iterable: read once, now), in order, parallelism 1. As in
        PyFlink, a ``Types.ROW``/``ROW_NAMED`` type makes tuples (and unnamed Rows) Rows named by
        it (``f0, f1 ...``), and a ``Types.TUPLE`` type makes lists tuples."""
        items = collection if type(collection) is list else list(collection)  # the source copies it
        if isinstance(type_info, RowTypeInfo):
            cls = row_class(tuple(type_info.field_names))
            items = [
                v
                if isinstance(v, Row) and v._fields is not None
                else tuple.__new__(cls, v)
                if isinstance(v, (tuple, list))
                else v
                for v in items
            ]
        elif isinstance(type_info, TupleTypeInfo) and any(issubclass(t, list) for t in set(map(type, items))):
            items = [tuple(v) if isinstance(v, list) else v for v in items]
        return self._source(CollectionSource(items), "Collection Source", type_info)

    def from_source(
        self, source: Any, watermark_strategy: Any, source_name: str, type_info: Any = None
    ) -> DataStream:
        """A Source (NumberSequenceSource, FileSource, DataGeneratorSource ...) with a watermark
        strategy applied right at the source."""
        if not callable(getattr(source, "create_reader", None)):
            raise TypeError(f"from_source takes a Source, got {source!r}")
        ds = self._source(source, source_name, type_info or getattr(source, "type_info", None))
        if watermark_strategy is not None and not (
            getattr(watermark_strategy, "kind", None) == "none"
            and getattr(watermark_strategy, "timestamp_assigner", None) is None
            and getattr(watermark_strategy, "idle_timeout_ms", None) is None
        ):
            ds = ds.assign_timestamps_and_watermarks(watermark_strategy)
        return ds

    def add_source(
        self, source_func: Any, source_name: str = "Custom Source", type_info: Any = None
    ) -> DataStream:
        return self.from_source(source_func, None, source_name, type_info)

    def read_text_file(self, file_path: str, charset_name: str = "UTF-8") -> DataStream:
        """The lines of a text file (or of every file in a directory), without line endings."""
        from flinkcore.datastream.connectors.file_system import FileSource, StreamFormat

        source = FileSource.for_record_stream_format(
            StreamFormat.text_line_format(charset_name), file_path
        ).build()
        return self._source(source, "Text File Source")

    def from_arrow(self, table_or_batches: Any, type_info: Any = None) -> DataStream:
        """(+) The rows of a pyarrow Table or RecordBatches, as Rows with named fields."""
        from flinkcore.datastream.connectors.arrow import ArrowSource

        source = ArrowSource(table_or_batches)
        return self._source(source, "Arrow Source", type_info or source.type_info)

    def from_pandas(self, df: Any, type_info: Any = None) -> DataStream:
        """(+) The rows of a pandas DataFrame, as Rows named by its columns."""
        import pyarrow as pa

        return self.from_arrow(pa.Table.from_pandas(df, preserve_index=False), type_info)

    def from_push_source(self, name: str = "Push Source", type_info: Any = None) -> DataStream:
        """(+) A stream the caller feeds record by record: run the job with ``execute_embedded()``
        and push into it (see :mod:`flinkcore.runtime.embedded`)."""
        from flinkcore.runtime.embedded import PushSource

        return self._source(PushSource(name, type_info), name, type_info)

    # -- execution ----------------------------------------------------------------------------
    def get_stream_graph(
        self, job_name: str = "Flink Streaming Job", clear_transformations: bool = False
    ) -> StreamGraph:
        config: dict[str, Any] = {
            "runtime_mode": "BATCH" if self._runtime_mode == RuntimeExecutionMode.BATCH else "STREAMING",
            "auto_watermark_interval": self._config.auto_watermark_interval,
            "buffer_timeout": self._buffer_timeout,
            "job_parameters": dict(self._config.global_job_parameters),
        }
        if self._batch_size:
            config["batch_size"] = self._batch_size
        if self._configuration.get_string("execution.runtime"):
            config["runtime"] = self._configuration.get_string("execution.runtime")
        for key in self._configuration.key_set():
            if key.startswith(_RUNTIME_PREFIX):
                config[key] = self._configuration.get_string(key)
        # Sinks without downstream run in the driver process by default, so a sink object's
        # fields are the job's results after execute(); false runs them in the task slots at
        # their parallelism, as Flink does.
        config["cluster_sinks_in_driver"] = self._configuration.get_boolean("flinkcore.sinks-in-driver", True)
        # seconds a finished job's worker processes wait for the next job (0: they exit at once)
        idle_timeout = self._configuration.get_string("flinkcore.worker-idle-timeout")
        if idle_timeout:
            config["cluster_worker_idle_timeout"] = idle_timeout
        if self._state_backend is not None:
            config["state_backend_factory"] = self._state_backend.create_keyed_state_backend
        graph = generate_stream_graph(
            self._transformations, job_name, self._parallelism, self._max_parallelism, config
        )
        if clear_transformations:
            self._transformations = []
        return graph

    def get_execution_plan(self) -> str:
        return json.dumps(self.get_stream_graph().to_json(), indent=2)

    def _checkpoint_settings(self) -> CheckpointSettings:
        cfg = self._checkpoint_config
        conf = self._configuration
        retained = conf.get_string("execution.checkpointing.num-retained") or conf.get_string(
            "state.checkpoints.num-retained"
        )
        return CheckpointSettings(
            interval_ms=cfg.interval_ms,
            storage_dir=cfg.storage_dir,
            exactly_once=cfg.mode == CheckpointingMode.EXACTLY_ONCE,
            min_pause_ms=cfg.min_pause_ms,
            timeout_ms=cfg.timeout_ms,
            tolerable_failures=cfg.tolerable_failures,
            retained=int(retained or 1),
            retain_on_cancellation=cfg.retention == ExternalizedCheckpointRetention.RETAIN_ON_CANCELLATION,
            externalized=cfg.retention != ExternalizedCheckpointRetention.NO_EXTERNALIZED_CHECKPOINTS,
        )

    def _create_job(self, job_name: str | None) -> JobExecution:
        if not self._transformations:
            raise RuntimeError("no operators defined in the job: add a source and a sink before execute()")
        conf = self._configuration
        graph = self.get_stream_graph(job_name or "Flink Streaming Job", clear_transformations=True)
        settings = self._checkpoint_settings()
        return JobExecution(
            graph,
            checkpoints=settings,
            restart_policy=restart_policy_from(self._restart_strategy, conf.to_dict(), settings.periodic),
            restore_path=os.environ.get(ENV_SAVEPOINT_PATH) or conf.get_string("execution.savepoint.path"),
            allow_non_restored_state=conf.get_boolean("execution.savepoint.ignore-unclaimed-state", False),
            register=os.environ.get(ENV_REGISTER_JOB) == "1",
        )

    def execute(self, job_name: str | None = None) -> JobExecutionResult:
        """Run the job on this thread until its sources end; raise its failure."""
        job = self._create_job(job_name)
        t0 = time.perf_counter()
        job.run()
        return JobExecutionResult(job.job_id, int((time.perf_counter() - t0) * 1000))

    def execute_async(self, job_name: str | None = None) -> JobClient:
        """Start the job on a background thread; returns a JobClient."""
        job = self._create_job(job_name)
        result: Future = Future()

        def run() -> None:
            t0 = time.perf_counter()
            try:
                job.run()
            except BaseException as e:  # noqa: BLE001 - handed to the future
                result.set_exception(e)
                return
            result.set_result(JobExecutionResult(job.job_id, int((time.perf_counter() - t0) * 1000)))

        thread = threading.Thread(target=run, name=f"flinkcore-job-{job.job_id[:8]}", daemon=True)
        thread.start()
        return JobClient(job, thread, result)

    def execute_embedded(
        self,
        job_name: str | None = None,
        *,
        restore_from: str | os.PathLike | None = None,
        processing_time: int | None = None,
    ) -> Any:
        """(+) Start the job inside the caller's thread and return its handle
        (:class:`~flinkcore.runtime.embedded.EmbeddedJob`: ``push``, ``advance_watermark``,
        ``outputs(tag)``, ``snapshot(path)``, ``close`` ...). ``restore_from``: a savepoint of
        an embedded job to continue from; ``processing_time``: start ms of a manual clock."""
        from flinkcore.runtime.embedded import EmbeddedJob

        if not self._transformations:
            raise RuntimeError("no operators defined in the job: start with env.from_push_source(name)")
        graph = self.get_stream_graph(job_name or "Embedded Job", clear_transformations=True)
        return EmbeddedJob(graph, restore_from=restore_from, processing_time=processing_time)

    def _execute_and_collect(self, stream: DataStream, job_name: str | None, limit: int | None) -> Any:
        from flinkcore.runtime.operators.sinks import CollectSinkOperator

        if limit is not None and limit <= 0:
            raise ValueError(f"limit must be positive, got {limit}")
        channel: queue.Queue = queue.Queue(maxsize=64)
        cancelled = threading.Event()
        t = OneInputTransformation(
            stream._transformation, "Collect Sink", lambda: CollectSinkOperator(channel, cancelled)
        )
        t.parallelism = 1
        t.is_sink = True
        self._add_transformation(t)
        job = self._create_job(job_name or "collect")
        job._cancel = cancelled  # cancelling the job also releases a blocked collect sink
        errors: list = []

        def run() -> None:
            try:
                job.run()
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller
                errors.append(e)
            _signal_done(channel, cancelled)

        thread = threading.Thread(target=run, name=f"flinkcore-collect-{job.job_id[:8]}", daemon=True)
        thread.start()
        it = CloseableIterator(channel, job, thread, errors)
        if limit is None:
            return it
        out = []
        try:
            for v in it:
                out.append(v)
                if len(out) >= limit:
                    break
        finally:
            it.close()
        return out
