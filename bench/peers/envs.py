"""Create each peer's own virtualenv on demand (opt-in: only `make bench-peers` calls this).

Peers never share an environment with flinkcore or with each other: PyFlink pins its own
numpy/pyarrow, Pathway and Bytewax ship large native wheels. Each venv lives under
``bench/peers/.venvs/<peer>`` and is created once; a marker file records the installed
requirement so a later run reuses it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"

#: What each peer needs; versions as measured in WORKLOADS.md's reference table.
REQUIREMENTS: dict[str, list[str]] = {
    "bytewax": ["bytewax==0.21.1", "numpy"],
    "pyflink": ["apache-flink==2.3.0", "numpy"],
    "pathway": ["pathway==0.33.0", "numpy"],
    # not a peer: bench/report.py draws its PNGs here, so matplotlib never becomes a flinkcore dependency
    "plot": ["matplotlib"],
}


def venv_python(peer: str) -> Path:
    return VENVS / peer / "bin" / "python"


def ensure_venv(peer: str, python: str = sys.executable) -> Path:
    """Return the peer venv's python, creating the venv and installing the peer if needed.

    Raises RuntimeError with pip's output if the peer does not install (Pathway, for one,
    has no wheel for every platform); the caller reports the peer as skipped.
    """
    reqs = REQUIREMENTS[peer]
    root = VENVS / peer
    marker = root / ".installed"
    if marker.exists() and marker.read_text() == "\n".join(reqs):
        return venv_python(peer)
    if not venv_python(peer).exists():
        subprocess.run([python, "-m", "venv", str(root)], check=True)
        subprocess.run([str(venv_python(peer)), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    proc = subprocess.run(
        [str(venv_python(peer)), "-m", "pip", "install", "-q", *reqs],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{peer}: pip install {' '.join(reqs)} failed:\n{proc.stdout}\n{proc.stderr}")
    marker.write_text("\n".join(reqs))
    return venv_python(peer)


def peer_env(peer: str) -> dict[str, str]:
    """The environment a peer runs in: its venv's bin first on PATH.

    PyFlink starts its Python workers with the ``python`` it finds on PATH, so without this
    the workers would run in another interpreter that has no pyflink.
    """
    env = dict(os.environ)
    env["PATH"] = f"{venv_python(peer).parent}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(VENVS / peer)
    env.pop("PYTHONPATH", None)
    return env


if __name__ == "__main__":
    for name in sys.argv[1:] or list(REQUIREMENTS):
        try:
            print(name, ensure_venv(name), flush=True)
        except RuntimeError as exc:
            print(f"SKIP {exc}", flush=True)
