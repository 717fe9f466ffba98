"""Encoders and schemas of PyFlink's ``pyflink.common.serialization``."""

from __future__ import annotations

from typing import Any

from flinkcore.common.pickling import CompactAttributes

__all__ = ["Encoder", "SimpleStringSchema"]


class Encoder(CompactAttributes):
    """Turns a record into the bytes a row-format FileSink writes."""

    def __init__(self, charset: str = "utf-8") -> None:
        self.charset = charset

    @staticmethod
    def simple_string_encoder(charset_name: str = "UTF-8") -> Encoder:
        """``str(record)`` followed by a newline (Flink's SimpleStringEncoder)."""
        return Encoder(charset_name)

    def encode(self, value: Any) -> bytes:
        return (str(value) + "\n").encode(self.charset)


class SimpleStringSchema(CompactAttributes):
    def __init__(self, charset: str = "UTF-8") -> None:
        self.charset = charset

    def serialize(self, value: Any) -> bytes:
        return str(value).encode(self.charset)

    def deserialize(self, message: bytes) -> str:
        return message.decode(self.charset)
