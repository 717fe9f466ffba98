"""Checkpoint storage: complete checkpoints verify, torn or corrupt ones are skipped, never taken."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import pytest

from flinkcore.state.checkpoint_storage import (
    CheckpointStorage,
    CorruptCheckpointError,
    begin_savepoint,
    load_checkpoint,
)

JOB = "a" * 32


def _write(storage, n, payload=b"state"):
    pending = storage.begin(n)
    pending.write("op-1", payload + str(n).encode())
    pending.write("sources", b"offset=%d" % n)
    return pending.complete({"operators": ["op-1"], "n": n})


def test_completed_checkpoint_round_trips(tmp_path):
    storage = CheckpointStorage(tmp_path, JOB)
    chk = _write(storage, 1)
    assert chk.path == tmp_path / JOB / "chk-1"
    latest = storage.latest_completed()
    assert latest.checkpoint_id == 1 and latest.job_id == JOB and latest.kind == "checkpoint"
    assert latest.read("op-1") == b"state1"
    assert latest.metadata == {"operators": ["op-1"], "n": 1}
    assert latest.names() == ["op-1", "sources"]


def test_in_progress_checkpoint_is_invisible(tmp_path):
    storage = CheckpointStorage(tmp_path, JOB)
    _write(storage, 1)
    pending = storage.begin(2)
    pending.write("op-1", b"half")
    assert storage.latest_completed().checkpoint_id == 1
    assert storage.completed_ids() == [1]
    pending.abort()
    assert not pending.path.exists()


def test_directory_without_metadata_is_skipped_with_warning(tmp_path):
    storage = CheckpointStorage(tmp_path, JOB)
    _write(storage, 1)
    (tmp_path / JOB / "chk-2").mkdir()
    with pytest.warns(RuntimeWarning, match="chk-2"):
        assert storage.latest_completed().checkpoint_id == 1


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "metadata"])
def test_corrupt_checkpoint_is_detected_and_skipped(tmp_path, damage):
    storage = CheckpointStorage(tmp_path, JOB, retained=5)
    _write(storage, 1)
    _write(storage, 2)
    chk2 = tmp_path / JOB / "chk-2"
    if damage == "flip":
        data = bytearray((chk2 / "op-1").read_bytes())
        data[0] ^= 0xFF
        (chk2 / "op-1").write_bytes(bytes(data))
    elif damage == "truncate":
        (chk2 / "op-1").write_bytes(b"st")
    elif damage == "delete":
        (chk2 / "sources").unlink()
    else:
        (chk2 / "_metadata").write_bytes((chk2 / "_metadata").read_bytes()[:-7])
    with pytest.raises(CorruptCheckpointError):
        load_checkpoint(chk2)
    with pytest.warns(RuntimeWarning, match="skipping checkpoint"):
        assert storage.latest_completed().checkpoint_id == 1


def test_prune_keeps_the_newest_n_and_removes_leftovers(tmp_path):
    storage = CheckpointStorage(tmp_path, JOB, retained=2)
    for n in range(1, 5):
        _write(storage, n)
    storage.begin(5).write("op-1", b"x")
    storage.prune()
    assert storage.completed_ids() == [3, 4]
    assert not any(p.name.endswith(".inprogress") for p in (tmp_path / JOB).iterdir())


def test_savepoint_is_relocatable(tmp_path):
    pending = begin_savepoint(tmp_path / "sp", JOB, 7)
    pending.write("op-1", b"value")
    sp = pending.complete({"uid": "counter"})
    assert sp.path.name.startswith("savepoint-aaaaaa-")
    moved = tmp_path / "elsewhere" / "mine"
    shutil.move(str(sp.path), moved)
    restored = load_checkpoint(f"file://{moved}")
    assert restored.kind == "savepoint" and restored.checkpoint_id == 7
    assert restored.read("op-1") == b"value" and restored.metadata == {"uid": "counter"}


def test_job_directory_resolves_to_its_latest_checkpoint(tmp_path):
    storage = CheckpointStorage(tmp_path, JOB, retained=3)
    _write(storage, 1)
    _write(storage, 2)
    assert load_checkpoint(tmp_path / JOB).checkpoint_id == 2
    with pytest.raises(CorruptCheckpointError, match="not a complete checkpoint"):
        load_checkpoint(tmp_path / "empty")


def test_bad_state_file_names_are_rejected(tmp_path):
    pending = CheckpointStorage(tmp_path, JOB).begin(1)
    for name in ["", "../x", "a/b", ".hidden", "_metadata"]:
        with pytest.raises(ValueError):
            pending.write(name, b"")
    pending.write("ok", b"")
    with pytest.raises(ValueError, match="twice"):
        pending.write("ok", b"")


def test_only_local_paths_and_file_uris(tmp_path):
    with pytest.raises(ValueError, match="file://"):
        CheckpointStorage("s3://bucket/dir", JOB)


WRITER = textwrap.dedent(
    """
    import sys
    from flinkcore.state.checkpoint_storage import CheckpointStorage
    storage = CheckpointStorage(sys.argv[1], "b" * 32, retained=2)
    n = 0
    print("ready", flush=True)
    while True:
        n += 1
        pending = storage.begin(n)
        for i in range(20):
            pending.write(f"part-{i}", bytes([n % 256]) * 50_000)
        pending.complete({"n": n})
        storage.prune()
    """
)


def test_sigkill_while_checkpointing_never_yields_a_torn_checkpoint(tmp_path):
    """A real process writing checkpoints in a loop is killed at several moments; every time the
    latest checkpoint found verifies in full and is self-consistent."""
    storage = CheckpointStorage(tmp_path, "b" * 32, retained=2)
    seen = []
    for delay in (0.05, 0.13, 0.29, 0.41):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a torn newest checkpoint is skipped with a warning
            latest = storage.latest_completed()
        if latest is not None:
            n = latest.metadata["n"]
            assert all(latest.read(f"part-{i}") == bytes([n % 256]) * 50_000 for i in range(20))
            seen.append(n)
    assert seen, "the writer never completed a checkpoint"
