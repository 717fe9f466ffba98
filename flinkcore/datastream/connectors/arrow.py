"""(+) The source behind ``env.from_arrow`` / ``env.from_pandas``: Rows named by the columns."""

from __future__ import annotations

from typing import Any

from flinkcore.common.typeinfo import Types
from flinkcore.runtime.operators.arrow import record_batch_to_rows
from flinkcore.runtime.sources import END, Source, SourceReader

__all__ = ["ArrowSource"]

_ARROW_TYPES = {
    "int64": Types.LONG,
    "int32": Types.INT,
    "int16": Types.SHORT,
    "int8": Types.BYTE,
    "double": Types.DOUBLE,
    "float": Types.FLOAT,
    "string": Types.STRING,
    "large_string": Types.STRING,
    "bool": Types.BOOLEAN,
}


class _ArrowReader(SourceReader):
    def __init__(self, batches: list) -> None:
        self.batches = batches
        self.batch_index = 0
        self.offset = 0

    def poll(self, max_records: int):
        part = self.poll_columnar(max_records)
        if part is END:
            return END
        return record_batch_to_rows(part[0]), None

    def poll_columnar(self, max_records: int):
        """The next slice of the input as a ``pyarrow.RecordBatch`` (zero copy), no timestamps."""
        while self.batch_index < len(self.batches):
            b = self.batches[self.batch_index]
            if self.offset >= b.num_rows:
                self.batch_index += 1
                self.offset = 0
                continue
            part = b if self.offset == 0 and b.num_rows <= max_records else b.slice(self.offset, max_records)
            self.offset += part.num_rows
            return part, None
        return END

    def snapshot_state(self) -> Any:
        return (self.batch_index, self.offset)

    def restore_state(self, state: Any) -> None:
        self.batch_index, self.offset = state


class ArrowSource(Source):
    bounded = True
    parallel = False

    def __init__(self, table_or_batches: Any) -> None:
        import pyarrow as pa

        if isinstance(table_or_batches, pa.Table):
            batches = table_or_batches.to_batches()
            schema = table_or_batches.schema
        elif isinstance(table_or_batches, pa.RecordBatch):
            batches, schema = [table_or_batches], table_or_batches.schema
        else:
            batches = list(table_or_batches)
            if not batches or not all(isinstance(b, pa.RecordBatch) for b in batches):
                raise TypeError(
                    "from_arrow takes a pyarrow Table, a RecordBatch or a non-empty list of RecordBatches"
                )
            schema = batches[0].schema
        self.batches = batches
        types = []
        for f in schema:
            make = _ARROW_TYPES.get(str(f.type))
            types.append(make() if make else Types.PICKLED_BYTE_ARRAY())
        self.type_info = Types.ROW_NAMED(list(schema.names), types)

    def create_reader(self, subtask_index: int, parallelism: int) -> SourceReader:
        return _ArrowReader(self.batches)
