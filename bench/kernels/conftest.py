"""Collect the kernel benchmarks (``bench_*.py``) with pytest, next to any ``test_*.py``.

``pytest bench/kernels --benchmark-only`` runs them under pytest-benchmark; each file also runs as a
script that prints its comparison table.
"""

import pytest


def pytest_collect_file(file_path, parent):
    if file_path.suffix == ".py" and file_path.name.startswith("bench_"):
        return pytest.Module.from_parent(parent, path=file_path)
    return None
