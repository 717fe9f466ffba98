"""Type stub of the compiled flinkcore._core.window_kernels (semantics in window_kernels.pyx)."""

from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np

AGGREGATES: tuple[str, ...]
AggSpec = tuple[str, int | None] | tuple[str, int | None, str]

def parse_aggs(aggs: Sequence[AggSpec]) -> list[tuple[str, int, str]]: ...
def window_start(ts: int, offset: int, slide: int) -> int: ...

class WindowAggTable:
    aggs: list[tuple[str, int, str]]
    size: int
    slide: int
    offset: int
    allowed_lateness: int
    last_max_ts: int
    last_late: int
    def __init__(
        self,
        size: int,
        slide: int,
        offset: int = ...,
        aggs: Sequence[AggSpec] = ...,
        allowed_lateness: int = ...,
    ) -> None: ...
    def update(
        self,
        keys: np.ndarray | Sequence[int],
        ts: np.ndarray | Sequence[int],
        values: Sequence[np.ndarray] | np.ndarray | None = ...,
        watermark: int | None = ...,
        return_late: bool = ...,
    ) -> Any: ...
    @property
    def layout(self) -> str: ...
    def late_mask(self, ts: np.ndarray | Sequence[int], watermark: int) -> np.ndarray: ...
    def fire(
        self,
        watermark: int,
        *,
        keys: bool = True,
        starts: bool = True,
        ends: bool = True,
        max_ts: bool = False,
        int_sums: Collection[str] = (),
    ) -> dict[str, np.ndarray]: ...
    def __len__(self) -> int: ...
    def snapshot(self) -> bytes: ...
    def restore(
        self, data: bytes, keep_keys: Callable[[np.ndarray], np.ndarray] | None = ..., clear: bool = ...
    ) -> None: ...

class SessionWindowTable:
    aggs: list[tuple[str, int, str]]
    gap: int
    allowed_lateness: int
    last_max_ts: int
    last_late: int
    def __init__(self, gap: int, aggs: Sequence[AggSpec] = ..., allowed_lateness: int = ...) -> None: ...
    def update(
        self,
        keys: np.ndarray | Sequence[int],
        ts: np.ndarray | Sequence[int],
        values: Sequence[np.ndarray] | np.ndarray | None = ...,
        watermark: int | None = ...,
        return_late: bool = ...,
    ) -> Any: ...
    def fire(self, watermark: int) -> dict[str, np.ndarray]: ...
    def __len__(self) -> int: ...
    def snapshot(self) -> bytes: ...
    def restore(
        self, data: bytes, keep_keys: Callable[[np.ndarray], np.ndarray] | None = ..., clear: bool = ...
    ) -> None: ...
