"""Pure-Python reference of ``flinkcore._core.serde``: the same format, byte for byte.

The layout (tags in ``_native/fc_serde.h``): a version byte, then one value; a value is a tag byte
and a payload. A batch: version byte 2, the record count, a layout byte, then either the values or,
when every record is a plain tuple with the same column types (int64, float, str, bytes), a row block:
the arity, the column tags once, and each record's payloads with no tags (version-1 batches, with
no layout byte, are still read). Integers are zigzag LEB128 varints, lengths are LEB128 varints,
floats are 8 bytes little-endian. See the native module's docstring for the type rules and ``encode_key``'s
canonical forms.
"""

from __future__ import annotations

import datetime as dt
import math
import pickle
import struct
from decimal import Decimal, InvalidOperation

import numpy as np

VERSION = 1  # a single value (dumps, encode_key)
BATCH_VERSION = 2  # a batch (dumps_batch): count, layout byte, then values or a row block
MAX_DEPTH = 256
BATCH_VALUES, BATCH_ROWS = 0, 1
ROWS_MAX_ARITY = 64

NONE, FALSE, TRUE, INT, BIGINT, FLOAT, STR, BYTES, TUPLE, LIST, DICT, ROW = range(12)
DECIMAL, DATETIME, DATE, TIME, PICKLE, STR_SURROGATES, TIMEDELTA = range(12, 19)
TZ_NONE, TZ_OFFSET = 0, 1


class SerdeError(ValueError):
    """Bytes that are not a valid flinkcore-serialized value (truncated, corrupt or a newer version)."""


_row: dict[str, object] = {"cls": None, "make": None, "fields": None, "values": None, "kind": None}


def _default_kind(row) -> int:
    kind = getattr(row, "_row_kind", None)
    return 0 if kind is None else int(getattr(kind, "value", kind))


def register_row_type(cls, make, fields=None, values=None, kind=None) -> None:
    if cls is not None and not callable(make):
        raise TypeError("register_row_type needs make(names, values, kind) -> row")
    _row.update(
        cls=cls,
        make=make,
        fields=fields if fields is not None else (lambda r: getattr(r, "_fields", None)),
        values=values if values is not None else tuple,
        kind=kind if kind is not None else _default_kind,
    )


def _varint(v: int) -> bytes:
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _zigzag(v: int) -> int:
    return ((v << 1) ^ (v >> 63)) & 0xFFFFFFFFFFFFFFFF


def _unzigzag(u: int) -> int:
    return (u >> 1) ^ -(u & 1)


def _span(tag: int, raw: bytes) -> bytes:
    return bytes([tag]) + _varint(len(raw)) + raw


def _strip_trailing_zeros(d):
    """Decimal('1.50') -> Decimal('1.5') exactly (Decimal.normalize would round to the context precision)."""
    sign, digits, exp = d.as_tuple()
    digits = list(digits)
    while len(digits) > 1 and digits[len(digits) - 1] == 0:
        digits.pop()
        exp += 1
    return Decimal((sign, tuple(digits), exp))


class _Encoder:
    def __init__(self, key: bool):
        self.key = key
        self.out = bytearray()

    def int_(self, v: int) -> None:
        if -(2**63) <= v < 2**63:
            self.out += bytes([INT]) + _varint(_zigzag(v))
        else:
            mag = abs(v)
            raw = mag.to_bytes((mag.bit_length() + 7) // 8, "little")
            self.out += bytes([BIGINT, 1 if v < 0 else 0]) + _varint(len(raw)) + raw

    def float_key(self, v: float) -> None:
        if math.isfinite(v) and v == math.floor(v):
            return self.int_(int(v))
        if math.isnan(v):
            v = math.nan
        self.out += bytes([FLOAT]) + struct.pack("<d", v)

    def str_(self, s: str) -> None:
        try:
            self.out += _span(STR, s.encode("utf-8"))
        except UnicodeEncodeError:
            self.out += _span(STR_SURROGATES, s.encode("utf-8", "surrogatepass"))

    def tz(self, tz) -> None:
        if tz is None:
            self.out.append(TZ_NONE)
            return
        off = tz.utcoffset(None)
        micros = (off.days * 86400 + off.seconds) * 1_000_000 + off.microseconds
        self.out += bytes([TZ_OFFSET]) + _varint(_zigzag(micros))

    def fields(self, d, with_date: bool, with_time: bool, fold: int) -> None:
        if with_date:
            self.out += _varint(_zigzag(d.year)) + bytes([d.month, d.day])
        if with_time:
            self.out += bytes([d.hour, d.minute, d.second]) + _varint(d.microsecond) + bytes([fold])

    def pickle_(self, obj) -> None:
        try:
            raw = pickle.dumps(obj, protocol=5)
        except Exception as e:
            t = type(obj)
            raise TypeError(
                f"cannot serialize a value of type {t.__module__}.{t.__qualname__}: it has no native "
                f"encoding and pickle failed ({e})"
            ) from e
        self.out += _span(PICKLE, raw)

    def decimal(self, d: Decimal) -> None:
        if self.key:
            if d.is_finite():
                if d == d.to_integral_value():
                    return self.int_(int(d))
                f = float(d)
                if Decimal(f) == d:
                    return self.float_key(f)
                d = _strip_trailing_zeros(d)
            elif d.is_nan():
                return self.float_key(math.nan)
            else:
                return self.float_key(float(d))
        self.out += _span(DECIMAL, str(d).encode("ascii"))

    def value(self, obj, depth: int = 0) -> None:
        if depth > MAX_DEPTH:
            raise ValueError(
                f"value nested deeper than {MAX_DEPTH} levels (or recursive) cannot be serialized"
            )
        t = type(obj)
        key = self.key
        if obj is None:
            self.out.append(NONE)
        elif t is bool:
            if key:
                self.int_(int(obj))
            else:
                self.out.append(TRUE if obj else FALSE)
        elif t is int:
            self.int_(obj)
        elif t is float:
            if key:
                self.float_key(obj)
            else:
                self.out += bytes([FLOAT]) + struct.pack("<d", obj)
        elif t is str:
            self.str_(obj)
        elif t is bytes:
            self.out += _span(BYTES, obj)
        elif t is tuple or t is list:
            self.out += bytes([TUPLE if t is tuple else LIST]) + _varint(len(obj))
            for e in obj:
                self.value(e, depth + 1)
        elif t is dict and not key:
            self.out += bytes([DICT]) + _varint(len(obj))
            for k, v in obj.items():
                self.value(k, depth + 1)
                self.value(v, depth + 1)
        elif _row["cls"] is not None and not key and isinstance(obj, _row["cls"]):
            self.row(obj, depth)
        elif t is Decimal:
            self.decimal(obj)
        elif t is dt.datetime:
            self.datetime(obj)
        elif t is dt.date:
            self.out.append(DATE)
            self.fields(obj, True, False, 0)
        elif t is dt.time:
            if obj.tzinfo is not None and key:
                raise TypeError(
                    "a time with a tzinfo cannot be a key (its equality depends on a date); use a datetime"
                )
            if not _is_plain_offset(obj.tzinfo):
                return self.pickle_(obj)
            self.out.append(TIME)
            self.fields(obj, False, True, 0 if key else obj.fold)
            self.tz(obj.tzinfo)
        elif t is dt.timedelta:
            self.out += bytes([TIMEDELTA]) + _varint(_zigzag(obj.days))
            self.out += _varint(obj.seconds) + _varint(obj.microseconds)
        elif key:
            self.key_other(obj, depth)
        else:
            self.pickle_(obj)

    def key_other(self, obj, depth: int) -> None:
        if isinstance(obj, tuple):
            return self.value(tuple(obj), depth)
        if isinstance(obj, (int, np.integer, np.bool_)):
            return self.int_(int(obj))
        if isinstance(obj, (float, np.floating)):
            return self.float_key(float(obj))
        if isinstance(obj, str):
            return self.str_(str(obj))
        if isinstance(obj, bytes):
            return self.value(bytes(obj), depth)
        if isinstance(obj, list):
            return self.value(list(obj), depth)
        t = type(obj)
        raise TypeError(
            f"cannot use a value of type {t.__module__}.{t.__qualname__} as a key: keys must be None, bool, "
            "int, float, str, bytes, Decimal, date/time/datetime/timedelta or a tuple/list/Row of those"
        )

    def datetime(self, d: dt.datetime) -> None:
        tz = d.tzinfo
        if self.key:
            if tz is not None and d.utcoffset() is not None:
                d = (d - d.utcoffset()).replace(tzinfo=dt.timezone.utc)
            elif tz is not None:
                d = d.replace(tzinfo=None)
            tz = d.tzinfo
        elif not _is_plain_offset(tz):
            return self.pickle_(d)
        self.out.append(DATETIME)
        self.fields(d, True, True, 0 if self.key else d.fold)
        self.tz(tz)

    def row(self, row, depth: int) -> None:
        names = _row["fields"](row)
        values = tuple(_row["values"](row))
        kind = _row["kind"](row)
        if not 0 <= kind <= 15:
            raise ValueError(f"Row kind must be in [0, 15], got {kind}")
        self.out += bytes([ROW]) + _varint(len(values))
        if names is None:
            self.out.append(kind << 4)
        else:
            if len(names) != len(values):
                raise ValueError(f"Row has {len(values)} values but {len(names)} field names")
            self.out.append(kind << 4 | 1)
            for name in names:
                if type(name) is not str:
                    raise TypeError(f"Row field names must be str, got {type(name).__qualname__}")
                raw = name.encode("utf-8", "surrogatepass")
                self.out += _varint(len(raw)) + raw
        for v in values:
            self.value(v, depth + 1)


def _is_plain_offset(tz) -> bool:
    if tz is None:
        return True
    if type(tz) is not dt.timezone:
        return False
    return tz.tzname(None) == dt.timezone(tz.utcoffset(None)).tzname(None)


def dumps(obj) -> bytes:
    enc = _Encoder(False)
    enc.out.append(VERSION)
    enc.value(obj)
    return bytes(enc.out)


def encode_key(obj) -> bytes:
    enc = _Encoder(True)
    enc.out.append(VERSION)
    enc.value(obj)
    return bytes(enc.out)


_COLUMN_TAGS = {int: INT, float: FLOAT, str: STR, bytes: BYTES}


def _row_block(records: list) -> bytes | None:
    """The records as one row block, or None when they are not all plain tuples of one column layout."""
    first = records[0]
    if type(first) is not tuple or not 1 <= len(first) <= ROWS_MAX_ARITY:
        return None
    types = tuple(type(v) for v in first)
    if not all(t in _COLUMN_TAGS for t in types):
        return None
    out = bytearray([BATCH_ROWS, len(types)] + [_COLUMN_TAGS[t] for t in types])
    for rec in records:
        if type(rec) is not tuple or len(rec) != len(types):
            return None
        for t, v in zip(types, rec, strict=True):
            if type(v) is not t:
                return None
            if t is int:
                if not -(2**63) <= v < 2**63:
                    return None
                out += _varint(_zigzag(v))
            elif t is float:
                out += struct.pack("<d", v)
            else:
                try:
                    raw = v.encode("utf-8") if t is str else v
                except UnicodeEncodeError:  # lone surrogates need the tagged form
                    return None
                out += _varint(len(raw)) + raw
    return bytes(out)


def dumps_batch(records) -> bytes:
    records = list(records)
    head = bytes([BATCH_VERSION]) + _varint(len(records))
    block = _row_block(records) if records else None
    if block is not None:
        return head + block
    enc = _Encoder(False)
    enc.out += head
    enc.out.append(BATCH_VALUES)
    for r in records:
        enc.value(r)
    return bytes(enc.out)


class _Decoder:
    def __init__(self, buf, allow_pickle: bool, batch: bool = False):
        try:
            self.buf = memoryview(buf).cast("B")
        except TypeError as e:
            raise TypeError(
                f"expected bytes, bytearray or a contiguous buffer, got {type(buf).__qualname__}"
            ) from e
        self.pos = 0
        self.allow_pickle = allow_pickle
        if not len(self.buf):
            raise SerdeError("empty input: not a serialized value")
        version = self.u8("the version byte")
        self.version = version
        if version == VERSION or (batch and version == BATCH_VERSION):
            return
        if batch:
            raise SerdeError(
                f"unsupported serde batch format version {version} (this flinkcore reads batch versions "
                f"{VERSION} and {BATCH_VERSION})"
            )
        raise SerdeError(
            f"unsupported serde format version {version} (this flinkcore reads version {VERSION})"
        )

    def remaining(self) -> int:
        return len(self.buf) - self.pos

    def truncated(self, what: str):
        return SerdeError(f"truncated input: {what} at offset {self.pos} runs past the end")

    def u8(self, what: str) -> int:
        if self.pos >= len(self.buf):
            raise self.truncated(what)
        self.pos += 1
        return self.buf[self.pos - 1]

    def varint(self, what: str) -> int:
        v = 0
        for shift in range(0, 70, 7):
            if self.pos >= len(self.buf):
                raise self.truncated(what)
            byte = self.buf[self.pos]
            self.pos += 1
            if shift == 63 and byte > 1:
                raise SerdeError(f"corrupt input: bad varint in {what} at offset {self.pos}")
            v |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return v
        raise SerdeError(f"corrupt input: bad varint in {what} at offset {self.pos}")

    def take(self, n: int, what: str) -> bytes:
        if n > self.remaining():
            raise self.truncated(what)
        self.pos += n
        return bytes(self.buf[self.pos - n : self.pos])

    def span(self, what: str) -> bytes:
        return self.take(self.varint(what), what)

    def count(self, what: str, per_item: int) -> int:
        n = self.varint(what)
        if n > self.remaining() // per_item:
            raise SerdeError(
                f"corrupt input: {what} of {n} items at offset {self.pos} exceeds the "
                f"{self.remaining()} bytes that remain"
            )
        return n

    def utf8(self, what: str, errors: str) -> str:
        raw = self.span(what)
        try:
            return raw.decode("utf-8", errors)
        except UnicodeDecodeError as e:
            raise SerdeError(f"corrupt input: invalid UTF-8 in {what} at offset {self.pos}: {e}") from None

    def rows(self, n: int) -> list:
        k = self.u8("a row batch")
        if not 1 <= k <= ROWS_MAX_ARITY:
            raise SerdeError(
                f"corrupt input: row batch of {k} columns at offset {self.pos - 1} (1 to {ROWS_MAX_ARITY})"
            )
        tags = self.take(k, "a row batch's column types")
        for j, tag in enumerate(tags):
            if tag not in (INT, FLOAT, STR, BYTES):
                raise SerdeError(
                    f"corrupt input: row batch column type 0x{tag:02x} at offset {self.pos - k + j}"
                )
        min_size = sum(8 if tag == FLOAT else 1 for tag in tags)
        if n > self.remaining() // min_size:
            raise SerdeError(
                f"corrupt input: row batch of {n} records at offset {self.pos} exceeds the "
                f"{self.remaining()} bytes that remain"
            )
        out = []
        for _ in range(n):
            rec = []
            for tag in tags:
                if tag == INT:
                    rec.append(_unzigzag(self.varint("an int")))
                elif tag == FLOAT:
                    rec.append(struct.unpack("<d", self.take(8, "a float"))[0])
                elif tag == STR:
                    rec.append(self.utf8("a str", "strict"))
                else:
                    rec.append(self.span("a bytes value"))
            out.append(tuple(rec))
        return out

    def value(self, depth: int = 0):
        if depth > MAX_DEPTH:
            raise SerdeError(f"corrupt input: nesting deeper than {MAX_DEPTH} at offset {self.pos}")
        tag = self.u8("a value")
        if tag == NONE:
            return None
        if tag == TRUE:
            return True
        if tag == FALSE:
            return False
        if tag == INT:
            return _unzigzag(self.varint("an int"))
        if tag == FLOAT:
            return struct.unpack("<d", self.take(8, "a float"))[0]
        if tag == STR:
            return self.utf8("a str", "strict")
        if tag == STR_SURROGATES:
            return self.utf8("a str", "surrogatepass")
        if tag == BYTES:
            return self.span("a bytes value")
        if tag in (TUPLE, LIST):
            n = self.count("a tuple" if tag == TUPLE else "a list", 1)
            items = [self.value(depth + 1) for _ in range(n)]
            return tuple(items) if tag == TUPLE else items
        if tag == DICT:
            n = self.count("a dict", 2)
            out = {}
            for _ in range(n):
                k = self.value(depth + 1)
                v = self.value(depth + 1)
                try:
                    out[k] = v
                except TypeError as e:
                    raise SerdeError(
                        f"corrupt input: unhashable dict key at offset {self.pos}: {e}"
                    ) from None
            return out
        if tag == ROW:
            return self.row(depth)
        if tag == BIGINT:
            sign = self.u8("a big int sign")
            if sign > 1:
                raise SerdeError(f"corrupt input: big int sign byte {sign} at offset {self.pos}")
            mag = int.from_bytes(self.span("a big int"), "little")
            return -mag if sign else mag
        if tag == DECIMAL:
            raw = self.span("a Decimal")
            try:
                return Decimal(raw.decode("ascii"))
            except (UnicodeDecodeError, InvalidOperation, ValueError):
                raise SerdeError(
                    f"corrupt input: invalid Decimal {raw[:40]!r} at offset {self.pos}"
                ) from None
        if tag in (DATETIME, DATE, TIME, TIMEDELTA):
            return self.temporal(tag)
        if tag == PICKLE:
            raw = self.span("a pickled value")
            if not self.allow_pickle:
                raise SerdeError(
                    f"pickled value at offset {self.pos} refused: loads(..., allow_pickle=False)"
                )
            try:
                return pickle.loads(raw)
            except Exception as e:
                raise SerdeError(
                    f"corrupt input: pickled value at offset {self.pos} failed to load: {e!r}"
                ) from e
        raise SerdeError(f"corrupt input: unknown tag 0x{tag:02x} at offset {self.pos - 1}")

    def tz(self):
        kind = self.u8("a tz marker")
        if kind == TZ_NONE:
            return None
        if kind == TZ_OFFSET:
            return dt.timezone(dt.timedelta(microseconds=_unzigzag(self.varint("a tz offset"))))
        raise SerdeError(f"corrupt input: unknown tz marker {kind} at offset {self.pos}")

    def temporal(self, tag: int):
        try:
            if tag == TIMEDELTA:
                days = _unzigzag(self.varint("a timedelta"))
                seconds = self.varint("a timedelta")
                micros = self.varint("a timedelta")
                if seconds >= 86400 or micros >= 1_000_000:
                    raise ValueError(f"timedelta fields out of range: {seconds} s, {micros} us")
                return dt.timedelta(days, seconds, micros)
            if tag in (DATE, DATETIME):
                year = _unzigzag(self.varint("a date"))
                month = self.u8("a date")
                day = self.u8("a date")
                if tag == DATE:
                    return dt.date(year, month, day)
            hour, minute, second = self.u8("a time"), self.u8("a time"), self.u8("a time")
            micro = self.varint("a time")
            fold = self.u8("a time")
            tz = self.tz()
            if tag == TIME:
                return dt.time(hour, minute, second, micro, tz, fold=fold)
            return dt.datetime(year, month, day, hour, minute, second, micro, tz, fold=fold)
        except SerdeError:
            raise
        except (ValueError, OverflowError, TypeError) as e:
            raise SerdeError(f"corrupt input: invalid date/time at offset {self.pos}: {e}") from None

    def row(self, depth: int):
        n = self.count("a Row", 1)
        flags = self.u8("a Row")
        has_names = flags & 1
        if flags & 0x0E:
            raise SerdeError(f"corrupt input: Row flags 0x{flags:02x} at offset {self.pos}")
        names = tuple(self.utf8("a Row field name", "surrogatepass") for _ in range(n)) if has_names else None
        values = tuple(self.value(depth + 1) for _ in range(n))
        if _row["make"] is None:
            raise SerdeError(
                "input holds a Row but no Row type is registered in this process: import flinkcore.common "
                "(or call flinkcore._core.serde.register_row_type) before loading"
            )
        return _row["make"](names, values, flags >> 4)


def loads(buf, *, allow_pickle: bool = True):
    d = _Decoder(buf, allow_pickle)
    out = d.value()
    if d.remaining():
        raise SerdeError(f"corrupt input: {d.remaining()} trailing bytes after the value at offset {d.pos}")
    return out


def loads_batch(buf, *, allow_pickle: bool = True) -> list:
    d = _Decoder(buf, allow_pickle, batch=True)
    n = d.count("a batch", 1)
    layout = d.u8("a batch layout") if d.version == BATCH_VERSION else BATCH_VALUES
    if layout == BATCH_ROWS:
        out = d.rows(n)
    elif layout == BATCH_VALUES:
        out = [d.value() for _ in range(n)]
    else:
        raise SerdeError(f"corrupt input: unknown batch layout {layout} at offset {d.pos - 1}")
    if d.remaining():
        raise SerdeError(f"corrupt input: {d.remaining()} trailing bytes after the batch at offset {d.pos}")
    return out
