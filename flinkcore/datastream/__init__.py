"""The DataStream API (``pyflink.datastream`` names): environment, streams, functions, state."""

from flinkcore.datastream.checkpoint_config import CheckpointConfig, ExternalizedCheckpointRetention
from flinkcore.datastream.checkpointing_mode import CheckpointingMode
from flinkcore.datastream.data_stream import (
    BroadcastConnectedStream,
    BroadcastStream,
    ConnectedStreams,
    DataStream,
    DataStreamSink,
    KeyedStream,
)
from flinkcore.datastream.execution_mode import RuntimeExecutionMode
from flinkcore.datastream.functions import (
    AggregateFunction,
    BroadcastProcessFunction,
    CoFlatMapFunction,
    CoMapFunction,
    CoProcessFunction,
    FilterFunction,
    FlatMapFunction,
    KeyedBroadcastProcessFunction,
    KeyedCoProcessFunction,
    KeyedProcessFunction,
    KeySelector,
    MapFunction,
    ProcessFunction,
    ReduceFunction,
    RuntimeContext,
    SinkFunction,
)
from flinkcore.datastream.output_tag import OutputTag
from flinkcore.datastream.slot_sharing_group import SlotSharingGroup
from flinkcore.datastream.state_backend import EmbeddedLmdbStateBackend, HashMapStateBackend
from flinkcore.datastream.stream_execution_environment import (
    ExecutionConfig,
    JobClient,
    JobStatus,
    StreamExecutionEnvironment,
)
from flinkcore.datastream.time_characteristic import TimeCharacteristic
from flinkcore.datastream.time_domain import TimeDomain

__all__ = [
    "AggregateFunction",
    "BroadcastConnectedStream",
    "BroadcastProcessFunction",
    "BroadcastStream",
    "CheckpointConfig",
    "CheckpointingMode",
    "CoFlatMapFunction",
    "CoMapFunction",
    "CoProcessFunction",
    "ConnectedStreams",
    "DataStream",
    "DataStreamSink",
    "EmbeddedLmdbStateBackend",
    "ExecutionConfig",
    "ExternalizedCheckpointRetention",
    "FilterFunction",
    "FlatMapFunction",
    "HashMapStateBackend",
    "JobClient",
    "JobStatus",
    "KeySelector",
    "KeyedBroadcastProcessFunction",
    "KeyedCoProcessFunction",
    "KeyedProcessFunction",
    "KeyedStream",
    "MapFunction",
    "OutputTag",
    "ProcessFunction",
    "ReduceFunction",
    "RuntimeContext",
    "RuntimeExecutionMode",
    "SinkFunction",
    "SlotSharingGroup",
    "StreamExecutionEnvironment",
    "TimeCharacteristic",
    "TimeDomain",
]
