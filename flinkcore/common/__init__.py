"""PyFlink-compatible values: Types, Row, Configuration, Duration, Time, WatermarkStrategy ..."""

from flinkcore.common.configuration import Configuration
from flinkcore.common.job_execution_result import JobExecutionResult
from flinkcore.common.restart_strategy import RestartStrategies, RestartStrategyConfiguration
from flinkcore.common.serialization import Encoder, SimpleStringSchema
from flinkcore.common.time import Duration, Time
from flinkcore.common.typeinfo import RowTypeInfo, TupleTypeInfo, TypeInformation, Types
from flinkcore.common.types import Row, RowKind
from flinkcore.common.watermark import Watermark
from flinkcore.common.watermark_strategy import (
    TimestampAssigner,
    WatermarkGenerator,
    WatermarkGeneratorSupplier,
    WatermarkOutput,
    WatermarkStrategy,
)

__all__ = [
    "Configuration",
    "Duration",
    "Encoder",
    "JobExecutionResult",
    "RestartStrategies",
    "RestartStrategyConfiguration",
    "Row",
    "RowKind",
    "RowTypeInfo",
    "SimpleStringSchema",
    "Time",
    "TimestampAssigner",
    "TupleTypeInfo",
    "TypeInformation",
    "Types",
    "Watermark",
    "WatermarkGenerator",
    "WatermarkGeneratorSupplier",
    "WatermarkOutput",
    "WatermarkStrategy",
]
