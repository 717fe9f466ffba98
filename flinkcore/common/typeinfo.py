"""``Types``: type information of PyFlink's API.

flinkcore runs Python objects, so type information is optional everywhere; it names fields
(``ROW_NAMED``), documents a stream, and tells the engine when a stream is columnar-typed.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BasicArrayTypeInfo",
    "BasicTypeInfo",
    "ListTypeInfo",
    "MapTypeInfo",
    "PickledBytesTypeInfo",
    "PrimitiveArrayTypeInfo",
    "RowTypeInfo",
    "TupleTypeInfo",
    "TypeInformation",
    "Types",
]


class TypeInformation:
    """Base of every type; equal when they describe the same type."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and repr(other) == repr(self)

    def __hash__(self) -> int:
        return hash(repr(self))

    def __repr__(self) -> str:
        return self.name

    def is_basic_type(self) -> bool:
        return False


class BasicTypeInfo(TypeInformation):
    #: the numpy/arrow dtype of a columnar stream of this type, when there is one
    def __init__(self, name: str, dtype: str | None = None, python_type: type | None = None) -> None:
        super().__init__(name)
        self.dtype = dtype
        self.python_type = python_type

    def is_basic_type(self) -> bool:
        return True


class PickledBytesTypeInfo(TypeInformation):
    def __init__(self) -> None:
        super().__init__("PICKLED_BYTE_ARRAY")


class RowTypeInfo(TypeInformation):
    def __init__(self, field_types: list[TypeInformation], field_names: list[str] | None = None) -> None:
        self.field_types = list(field_types)
        self.field_names = list(field_names) if field_names else [f"f{i}" for i in range(len(field_types))]
        if len(self.field_names) != len(self.field_types):
            raise ValueError(f"{len(self.field_names)} field names for {len(self.field_types)} field types")
        super().__init__(
            "ROW<"
            + ", ".join(f"{n} {t!r}" for n, t in zip(self.field_names, self.field_types, strict=True))
            + ">"
        )

    def get_field_names(self) -> list[str]:
        return list(self.field_names)

    def get_field_types(self) -> list[TypeInformation]:
        return list(self.field_types)

    def get_field_index(self, name: str) -> int:
        return self.field_names.index(name)

    def get_arity(self) -> int:
        return len(self.field_types)


class TupleTypeInfo(TypeInformation):
    def __init__(self, field_types: list[TypeInformation]) -> None:
        self.field_types = list(field_types)
        super().__init__("TUPLE<" + ", ".join(repr(t) for t in self.field_types) + ">")

    def get_field_types(self) -> list[TypeInformation]:
        return list(self.field_types)

    def get_arity(self) -> int:
        return len(self.field_types)


class ListTypeInfo(TypeInformation):
    def __init__(self, element_type: TypeInformation) -> None:
        self.element_type = element_type
        super().__init__(f"LIST<{element_type!r}>")


class MapTypeInfo(TypeInformation):
    def __init__(self, key_type: TypeInformation, value_type: TypeInformation) -> None:
        self.key_type, self.value_type = key_type, value_type
        super().__init__(f"MAP<{key_type!r}, {value_type!r}>")


class BasicArrayTypeInfo(TypeInformation):
    def __init__(self, element_type: TypeInformation) -> None:
        self.element_type = element_type
        super().__init__(f"BASIC_ARRAY<{element_type!r}>")


class PrimitiveArrayTypeInfo(TypeInformation):
    def __init__(self, element_type: TypeInformation) -> None:
        self.element_type = element_type
        super().__init__(f"PRIMITIVE_ARRAY<{element_type!r}>")


def _basic(name: str, dtype: str | None, python_type: type | None) -> Any:
    info = BasicTypeInfo(name, dtype, python_type)
    return staticmethod(lambda: info)


class Types:
    """Factory of type information, as ``pyflink.common.typeinfo.Types``."""

    STRING = _basic("STRING", "string", str)
    BYTE = _basic("BYTE", "int8", int)
    BOOLEAN = _basic("BOOLEAN", "bool", bool)
    SHORT = _basic("SHORT", "int16", int)
    INT = _basic("INT", "int32", int)
    LONG = _basic("LONG", "int64", int)
    FLOAT = _basic("FLOAT", "float32", float)
    DOUBLE = _basic("DOUBLE", "float64", float)
    CHAR = _basic("CHAR", None, str)
    BIG_INT = _basic("BIG_INT", None, int)
    BIG_DEC = _basic("BIG_DEC", None, None)
    SQL_DATE = _basic("SQL_DATE", None, None)
    SQL_TIME = _basic("SQL_TIME", None, None)
    SQL_TIMESTAMP = _basic("SQL_TIMESTAMP", None, None)
    INSTANT = _basic("INSTANT", None, None)
    PRIMITIVE_BYTE_ARRAY = _basic("PRIMITIVE_BYTE_ARRAY", None, bytes)

    @staticmethod
    def PICKLED_BYTE_ARRAY() -> TypeInformation:
        return PickledBytesTypeInfo()

    @staticmethod
    def ROW(field_types: list[TypeInformation]) -> RowTypeInfo:
        return RowTypeInfo(field_types)

    @staticmethod
    def ROW_NAMED(field_names: list[str], field_types: list[TypeInformation]) -> RowTypeInfo:
        return RowTypeInfo(field_types, field_names)

    @staticmethod
    def TUPLE(field_types: list[TypeInformation]) -> TupleTypeInfo:
        return TupleTypeInfo(field_types)

    @staticmethod
    def LIST(element_type_info: TypeInformation) -> ListTypeInfo:
        return ListTypeInfo(element_type_info)

    @staticmethod
    def MAP(key_type_info: TypeInformation, value_type_info: TypeInformation) -> MapTypeInfo:
        return MapTypeInfo(key_type_info, value_type_info)

    @staticmethod
    def BASIC_ARRAY(element_type: TypeInformation) -> BasicArrayTypeInfo:
        return BasicArrayTypeInfo(element_type)

    @staticmethod
    def PRIMITIVE_ARRAY(element_type: TypeInformation) -> PrimitiveArrayTypeInfo:
        return PrimitiveArrayTypeInfo(element_type)

    @staticmethod
    def OBJECT_ARRAY(element_type: TypeInformation) -> BasicArrayTypeInfo:
        return BasicArrayTypeInfo(element_type)
