"""State backends a job can choose (``env.set_state_backend`` or ``state.backend.type``).

``HashMapStateBackend``: keyed state in memory (the default). ``EmbeddedLmdbStateBackend`` (+):
keyed state in LMDB on disk, the analogue of Flink's EmbeddedRocksDBStateBackend; each keyed
operator instance gets its own LMDB environment under ``path`` (a temp dir when None).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

__all__ = ["EmbeddedLmdbStateBackend", "HashMapStateBackend", "StateBackend"]


class StateBackend:
    """Creates one keyed state backend per keyed operator instance."""

    def create_keyed_state_backend(self, **kwargs: Any) -> Any:
        raise NotImplementedError


class HashMapStateBackend(StateBackend):
    def create_keyed_state_backend(self, **kwargs: Any) -> Any:
        from flinkcore.state.heap import HeapKeyedStateBackend

        return HeapKeyedStateBackend(**kwargs)

    def __repr__(self) -> str:
        return "HashMapStateBackend()"


class EmbeddedLmdbStateBackend(StateBackend):
    def __init__(self, path: str | None = None, map_size: int | None = None) -> None:
        self.path = path
        self.map_size = map_size

    def create_keyed_state_backend(self, **kwargs: Any) -> Any:
        from flinkcore.state.lmdb_backend import LmdbKeyedStateBackend

        path = None
        if self.path is not None:
            os.makedirs(self.path, exist_ok=True)
            path = tempfile.mkdtemp(prefix="op-", dir=self.path)
        return LmdbKeyedStateBackend(path=path, map_size=self.map_size, **kwargs)

    def __repr__(self) -> str:
        return f"EmbeddedLmdbStateBackend(path={self.path!r})"


def backend_from_type(name: str) -> StateBackend:
    """``state.backend.type`` of Flink 2.x: ``hashmap`` or ``lmdb`` (``rocksdb`` maps to lmdb)."""
    n = name.strip().lower()
    if n in ("hashmap", "heap", "memory"):
        return HashMapStateBackend()
    if n in ("lmdb", "rocksdb"):
        return EmbeddedLmdbStateBackend()
    raise ValueError(f"unknown state.backend.type {name!r}: use 'hashmap' or 'lmdb'")
