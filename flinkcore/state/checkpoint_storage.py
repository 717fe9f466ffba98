"""Checkpoint storage: where completed checkpoints and savepoints live, and how a torn one is told apart.

Layout, as Flink's::

    <storage dir>/<job id>/chk-<n>/          a completed checkpoint
        _metadata                           written last; lists every state file with size and CRC-32
        <state files>
    <storage dir>/<job id>/.chk-<n>.inprogress/   being written; never read back
    <savepoint dir>/savepoint-<job6>-<rand>/ a savepoint: the same format, self-contained

A checkpoint is complete exactly when its directory has the final name and a ``_metadata`` whose
checksums match its files: state files are written into the in-progress directory, fsynced, then
``_metadata`` is written to a temporary name, fsynced and renamed, and finally the directory itself
is renamed (and its parent fsynced). A crash at any point leaves either a complete checkpoint or
one that :meth:`CheckpointStorage.latest_completed` skips with a warning.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

METADATA_FILE = "_metadata"
FORMAT_VERSION = 1
_CHK_DIR = re.compile(r"^chk-(\d+)$")


class CorruptCheckpointError(Exception):
    """A checkpoint or savepoint directory that is incomplete or whose files fail their checksums."""


class IncompatibleSnapshotError(ValueError):
    """A snapshot this job cannot restore (another max parallelism, a source that cannot split its
    readers' positions over another parallelism, a state format it does not read): restarting
    cannot help, so the job fails at once, under any restart strategy (Flink fails such a job when
    it starts)."""


def storage_path(uri_or_path: str | os.PathLike) -> Path:
    """A local path from a path or a ``file://`` URI (other schemes are not supported yet)."""
    text = os.fspath(uri_or_path)
    if "://" in text:
        parsed = urlparse(text)
        if parsed.scheme != "file":
            raise ValueError(f"checkpoint storage supports local paths and file:// URIs, got {text!r}")
        text = parsed.path
    return Path(text)


def _fsync_dir(path: Path) -> None:
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


@dataclass
class CompletedCheckpoint:
    """A checkpoint or savepoint whose metadata and files have been verified."""

    path: Path
    checkpoint_id: int
    job_id: str
    kind: str
    timestamp_ms: int
    metadata: dict
    files: dict[str, dict] = field(repr=False)

    def read(self, name: str) -> bytes:
        """The bytes of one state file, checked against its recorded size and CRC-32."""
        entry = self.files.get(name)
        if entry is None:
            raise KeyError(f"checkpoint {self.path} has no state file {name!r}")
        data = (self.path / name).read_bytes()
        if len(data) != entry["size"] or zlib.crc32(data) != entry["crc32"]:
            raise CorruptCheckpointError(f"state file {name!r} of {self.path} fails its checksum")
        return data

    def names(self) -> list[str]:
        return sorted(self.files)


class PendingCheckpoint:
    """A checkpoint being written: state files go into a hidden directory until :meth:`complete`."""

    def __init__(self, final_path: Path, checkpoint_id: int, job_id: str, kind: str) -> None:
        self.final_path = final_path
        self.checkpoint_id = checkpoint_id
        self.job_id = job_id
        self.kind = kind
        self.path = final_path.parent / f".{final_path.name}.inprogress"
        if self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True)
        self._files: dict[str, dict] = {}

    def write(self, name: str, data: bytes) -> None:
        """Write one state file durably. Names are flat (no directories) and unique per checkpoint."""
        if not name or "/" in name or "\\" in name or name.startswith(".") or name == METADATA_FILE:
            raise ValueError(f"invalid state file name {name!r}")
        if name in self._files:
            raise ValueError(f"state file {name!r} written twice in checkpoint {self.checkpoint_id}")
        _write_durably(self.path / name, data)
        self._files[name] = {"size": len(data), "crc32": zlib.crc32(data)}

    def complete(self, metadata: dict | None = None) -> CompletedCheckpoint:
        """Write ``_metadata`` last and atomically publish the directory under its final name."""
        record = {
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "checkpoint_id": self.checkpoint_id,
            "job_id": self.job_id,
            "timestamp_ms": int(time.time() * 1000),
            "files": self._files,
            "metadata": metadata or {},
        }
        body = json.dumps(record, sort_keys=True).encode()
        record_bytes = json.dumps({"crc32": zlib.crc32(body), "body": record}, sort_keys=True).encode()
        tmp = self.path / f".{METADATA_FILE}.tmp"
        _write_durably(tmp, record_bytes)
        os.replace(tmp, self.path / METADATA_FILE)
        _fsync_dir(self.path)
        if self.final_path.exists():
            raise FileExistsError(f"{self.final_path} already exists")
        os.rename(self.path, self.final_path)
        _fsync_dir(self.final_path.parent)
        return load_checkpoint(self.final_path)

    def abort(self) -> None:
        """Discard everything written so far."""
        shutil.rmtree(self.path, ignore_errors=True)


def load_checkpoint(path: str | os.PathLike) -> CompletedCheckpoint:
    """Open a completed checkpoint or savepoint directory, verifying metadata and every file.

    ``path`` may also be a job's checkpoint directory (``<storage>/<job id>``), in which case its
    latest complete checkpoint is taken, as ``flinkcore run -s`` accepts either.
    """
    directory = storage_path(path)
    if not (directory / METADATA_FILE).is_file():
        latest = _latest_in(directory) if directory.is_dir() else None
        if latest is None:
            raise CorruptCheckpointError(
                f"{directory} is not a complete checkpoint or savepoint (no {METADATA_FILE})"
            )
        return latest
    try:
        outer = json.loads((directory / METADATA_FILE).read_bytes())
        body = outer["body"]
        if zlib.crc32(json.dumps(body, sort_keys=True).encode()) != outer["crc32"]:
            raise CorruptCheckpointError(f"{directory}/{METADATA_FILE} fails its checksum")
        if body["format_version"] != FORMAT_VERSION:
            raise CorruptCheckpointError(
                f"{directory} has checkpoint format {body['format_version']}, "
                f"this flinkcore reads {FORMAT_VERSION}"
            )
        files = body["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptCheckpointError(f"{directory}/{METADATA_FILE} is unreadable: {exc}") from exc
    for name, entry in files.items():
        file = directory / name
        if not file.is_file() or file.stat().st_size != entry["size"]:
            raise CorruptCheckpointError(f"state file {name!r} of {directory} is missing or truncated")
        if zlib.crc32(file.read_bytes()) != entry["crc32"]:
            raise CorruptCheckpointError(f"state file {name!r} of {directory} fails its checksum")
    return CompletedCheckpoint(
        path=directory,
        checkpoint_id=body["checkpoint_id"],
        job_id=body["job_id"],
        kind=body["kind"],
        timestamp_ms=body["timestamp_ms"],
        metadata=body["metadata"],
        files=files,
    )


def _checkpoint_dirs(job_dir: Path) -> Iterator[tuple[int, Path]]:
    if not job_dir.is_dir():
        return
    for entry in job_dir.iterdir():
        match = _CHK_DIR.match(entry.name)
        if match and entry.is_dir():
            yield int(match.group(1)), entry


def _latest_in(job_dir: Path) -> CompletedCheckpoint | None:
    for _, path in sorted(_checkpoint_dirs(job_dir), reverse=True):
        try:
            return load_checkpoint(path)
        except CorruptCheckpointError as exc:
            warnings.warn(f"skipping checkpoint: {exc}", RuntimeWarning, stacklevel=3)
    return None


class CheckpointStorage:
    """The checkpoints of one job under ``<base dir>/<job id>/``, with retention of the last N."""

    def __init__(self, base_dir: str | os.PathLike, job_id: str, retained: int = 1) -> None:
        if retained < 1:
            raise ValueError(f"retained checkpoints must be >= 1, got {retained}")
        self.base_dir = storage_path(base_dir)
        self.job_id = job_id
        self.job_dir = self.base_dir / job_id
        self.retained = retained

    def begin(self, checkpoint_id: int) -> PendingCheckpoint:
        self.job_dir.mkdir(parents=True, exist_ok=True)
        return PendingCheckpoint(
            self.job_dir / f"chk-{checkpoint_id}", checkpoint_id, self.job_id, "checkpoint"
        )

    def completed_ids(self) -> list[int]:
        """Ids of the directories that carry a final checkpoint name (not yet verified)."""
        return sorted(n for n, _ in _checkpoint_dirs(self.job_dir))

    def latest_completed(self) -> CompletedCheckpoint | None:
        """The newest checkpoint that verifies; torn or corrupt ones are skipped with a warning."""
        return _latest_in(self.job_dir)

    def prune(self) -> None:
        """Delete all but the newest ``retained`` checkpoints, and leftovers of interrupted ones."""
        for _, path in sorted(_checkpoint_dirs(self.job_dir))[: -self.retained]:
            shutil.rmtree(path, ignore_errors=True)
        if self.job_dir.is_dir():
            for entry in self.job_dir.iterdir():
                if entry.name.endswith(".inprogress"):
                    shutil.rmtree(entry, ignore_errors=True)

    def discard_all(self) -> None:
        """Remove this job's checkpoints (DELETE_ON_CANCELLATION)."""
        shutil.rmtree(self.job_dir, ignore_errors=True)


def begin_savepoint(target_dir: str | os.PathLike, job_id: str, checkpoint_id: int) -> PendingCheckpoint:
    """A savepoint in a fresh ``savepoint-<job6>-<random>`` directory under ``target_dir``."""
    base = storage_path(target_dir)
    base.mkdir(parents=True, exist_ok=True)
    name = f"savepoint-{job_id[:6]}-{secrets.token_hex(6)}"
    return PendingCheckpoint(base / name, checkpoint_id, job_id, "savepoint")
