"""``Configuration``: string-keyed settings (Flink's ``Configuration``), e.g.
``pipeline.auto-watermark-interval``, ``execution.runtime-mode``, ``parallelism.default``."""

from __future__ import annotations

from typing import Any

__all__ = ["Configuration", "parse_flag"]

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def parse_flag(value: Any, where: str) -> bool:
    """A switch given as a bool or as text (``true``/``1``/``yes``/``on`` or their opposites);
    anything else is an error naming ``where`` (the configuration key or environment variable)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{where} must be true or false, got {value!r}")


class Configuration:
    def __init__(self, other: Configuration | dict | None = None) -> None:
        self._data: dict[str, str] = {}
        if isinstance(other, Configuration):
            self._data.update(other._data)
        elif other:
            for k, v in other.items():
                self.set_string(k, v)

    def set_string(self, key: str, value: Any) -> Configuration:
        self._data[key] = value if isinstance(value, str) else _to_string(value)
        return self

    def get_string(self, key: str, default_value: str | None = None) -> str | None:
        return self._data.get(key, default_value)

    def set_integer(self, key: str, value: int) -> Configuration:
        return self.set_string(key, str(int(value)))

    def get_integer(self, key: str, default_value: int = 0) -> int:
        v = self._data.get(key)
        return default_value if v is None else int(v)

    set_long = set_integer
    get_long = get_integer

    def set_float(self, key: str, value: float) -> Configuration:
        return self.set_string(key, repr(float(value)))

    def get_float(self, key: str, default_value: float = 0.0) -> float:
        v = self._data.get(key)
        return default_value if v is None else float(v)

    set_double = set_float
    get_double = get_float

    def set_boolean(self, key: str, value: bool) -> Configuration:
        return self.set_string(key, "true" if value else "false")

    def get_boolean(self, key: str, default_value: bool = False) -> bool:
        v = self._data.get(key)
        return default_value if v is None else v.strip().lower() in _TRUE

    def set(self, key: str, value: Any) -> Configuration:
        return self.set_string(key, value)

    def get(self, key: str, default_value: Any = None) -> Any:
        return self._data.get(key, default_value)

    def contains_key(self, key: str) -> bool:
        return key in self._data

    def remove_config(self, key: str) -> bool:
        return self._data.pop(key, None) is not None

    def key_set(self) -> set[str]:
        return set(self._data)

    keys = key_set

    def add_all(self, other: Configuration, prefix: str = "") -> Configuration:
        for k, v in other._data.items():
            self._data[prefix + k] = v
        return self

    def add_all_to_dict(self, target: dict) -> None:
        target.update(self._data)

    def to_dict(self) -> dict[str, str]:
        return dict(self._data)

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Configuration) and other._data == self._data

    def __repr__(self) -> str:
        return f"Configuration({self._data!r})"


def _to_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "millis"):
        return f"{value.millis} ms"
    return str(value)


def parse_millis(text: str) -> int:
    """Parse Flink duration strings: ``200``, ``200 ms``, ``5 s``, ``1 min``, ``2 h``."""
    t = text.strip().lower().replace(" ", "")
    for suffix, mult in (
        ("ms", 1),
        ("millis", 1),
        ("min", 60_000),
        ("s", 1000),
        ("h", 3_600_000),
        ("d", 86_400_000),
    ):
        if t.endswith(suffix) and t[: -len(suffix)].replace(".", "", 1).isdigit():
            return int(float(t[: -len(suffix)]) * mult)
    return int(t)
