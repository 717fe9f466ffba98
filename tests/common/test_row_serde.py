"""Rows travel through the native serialization with their field names and kind."""

from flinkcore._core import serde
from flinkcore.common import Row
from flinkcore.common.types import RowKind, row_class


def test_rows_round_trip_natively_with_names_and_kind():
    named = Row(id=7, name="ana")
    positional = Row(1, 2.5)
    positional.set_row_kind(RowKind.UPDATE_AFTER)
    schema_row = tuple.__new__(row_class(("k", "v")), (3, 4.0))
    for row in (named, positional, schema_row):
        data = serde.dumps(row)
        assert b"pickle" not in data and len(data) < 40  # not the pickle fallback
        back = serde.loads(data)
        assert back == row and back._fields == row._fields and back._row_kind == row._row_kind
    assert serde.loads(serde.dumps(named)).name == "ana"
