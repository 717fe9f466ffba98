"""``Row``: a record with positional and (optionally) named fields, as PyFlink's Row.

A Row is a ``tuple`` subclass, so it is cheap, hashable (usable as a key) and compares like a
tuple of its values; names are extra: ``Row(a=1).a``, ``row["a"]``, ``row.as_dict()``.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

__all__ = ["Row", "RowKind"]


class RowKind(Enum):
    """The change a row encodes (Flink's changelog kinds); printed as ``+I``, ``-U`` ..."""

    INSERT = 0
    UPDATE_BEFORE = 1
    UPDATE_AFTER = 2
    DELETE = 3

    def short_string(self) -> str:
        return ("+I", "-U", "+U", "-D")[self.value]


class Row(tuple):
    """A row of values, optionally named: ``Row(1, "a")``, ``Row(id=1, name="a")``.

    ``Row("id", "name")`` (all strings, no kwargs) can also serve as a factory:
    ``Person = Row("id", "name"); Person(1, "a")`` gives a named row, as in PyFlink.
    """

    # No __slots__ (tuple subclasses cannot have non-empty slots): names and kind are class-level
    # defaults, so a positional Row, or one of a per-schema subclass (see ``row_class``), never
    # allocates an instance dict.
    _fields: tuple | None = None
    _row_kind: RowKind = RowKind.INSERT

    def __new__(cls, *args: Any, **kwargs: Any) -> Row:
        if args and kwargs:
            raise ValueError("a Row takes positional values or named values, not both")
        if kwargs:
            row = tuple.__new__(cls, kwargs.values())
            row._fields = tuple(kwargs)
            return row
        return tuple.__new__(cls, args)

    @classmethod
    def _named(cls, names: Any, values: Any) -> Row:
        row = tuple.__new__(cls, values)
        row._fields = tuple(names)
        return row

    def __call__(self, *args: Any) -> Row:
        """Use a Row of field names as a factory of named rows."""
        if self._fields is not None or not all(isinstance(n, str) for n in self):
            raise TypeError("only a Row of field names (Row('a', 'b')) can be called to make rows")
        if len(args) != len(self):
            raise ValueError(f"expected {len(self)} values for fields {tuple(self)}, got {len(args)}")
        return Row._named(tuple(self), args)

    def __getitem__(self, item: Any) -> Any:
        if isinstance(item, str):
            fields = self._fields
            if fields is None or item not in fields:
                raise KeyError(f"Row has no field {item!r} (fields: {fields})")
            return tuple.__getitem__(self, fields.index(item))
        return tuple.__getitem__(self, item)

    def __getattr__(self, item: str) -> Any:
        if item.startswith("__"):
            raise AttributeError(item)
        fields = self._fields
        if fields is None or item not in fields:
            raise AttributeError(f"Row has no field {item!r} (fields: {fields})")
        return tuple.__getitem__(self, fields.index(item))

    def __setattr__(self, key: str, value: Any) -> None:
        if key in ("_fields", "_row_kind"):
            object.__setattr__(self, key, value)
        else:
            raise AttributeError("Row is immutable; build a new Row instead")

    def get_fields_by_names(self, names: list[str]) -> list:
        return [self[n] for n in names]

    def get_field_names(self) -> list[str] | None:
        return None if self._fields is None else list(self._fields)

    def as_dict(self, recursive: bool = False) -> dict:
        if self._fields is None:
            raise TypeError("cannot convert a Row without field names to a dict")

        def conv(v: Any) -> Any:
            if isinstance(v, Row) and recursive:
                return v.as_dict(True)
            if isinstance(v, list) and recursive:
                return [conv(x) for x in v]
            if isinstance(v, dict) and recursive:
                return {k: conv(x) for k, x in v.items()}
            return v

        return {k: conv(v) for k, v in zip(self._fields, self, strict=True)}

    def get_row_kind(self) -> RowKind:
        return self._row_kind

    def set_row_kind(self, row_kind: RowKind) -> None:
        self._row_kind = row_kind

    def set_field_names(self, field_names: list[str]) -> None:
        if len(field_names) != len(self):
            raise ValueError(f"{len(field_names)} names for a Row of arity {len(self)}")
        self._fields = tuple(field_names)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Row):
            return self._row_kind == other._row_kind and tuple.__eq__(self, other)
        return NotImplemented if not isinstance(other, tuple) else False

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    __hash__ = tuple.__hash__

    def __repr__(self) -> str:
        if self._fields is not None:
            return "Row({})".format(", ".join(f"{k}={v!r}" for k, v in zip(self._fields, self, strict=True)))
        return "Row({})".format(", ".join(repr(v) for v in self))

    def __reduce__(self):
        return (_rebuild_row, (tuple(self), self._fields, self._row_kind.value))


try:  # the C descriptor behind namedtuple fields: row.name without a Python call
    from _collections import _tuplegetter
except ImportError:  # pragma: no cover - other interpreters
    from operator import itemgetter

    def _tuplegetter(index: int, doc: str) -> Any:
        return property(itemgetter(index), doc=doc)


def row_class(field_names: tuple[str, ...]) -> type[Row]:
    """A Row subclass whose instances all carry ``field_names`` (no per-row dict): build rows
    fast from columns with ``tuple.__new__(cls, values)``. Its fields are read by C-level
    descriptors (``row.total`` costs what a namedtuple's field does); a name that is already an
    attribute of Row (a method such as ``count``) keeps its meaning, as on any Row."""
    names = tuple(field_names)
    attrs: dict[str, Any] = {"_fields": names}
    for i, name in enumerate(names):
        if (
            isinstance(name, str)
            and name.isidentifier()
            and not name.startswith("_")
            and not hasattr(Row, name)
        ):
            if names.index(name) == i:
                attrs[name] = _tuplegetter(i, f"field {name!r}")
    return type("Row", (Row,), attrs)


def _rebuild_row(values: tuple, fields: tuple | None, kind: int) -> Row:
    row = Row._named(fields, values) if fields is not None else Row(*values)
    row._row_kind = RowKind(kind)
    return row


def _register_with_serde() -> None:
    """Rows encode natively (with field names and kind) in checkpoints, state and shuffles."""
    from flinkcore._core import serde

    serde.register_row_type(Row, lambda names, values, kind: _rebuild_row(tuple(values), names, kind))


_register_with_serde()
