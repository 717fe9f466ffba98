"""The session table's due queue against the reference: long random streams with many keys,
watermark jumps far past the queue's ring, allowed lateness (fired sessions kept and re-opened
by late records) and snapshots, where the hypothesis scripts of test_window_kernels are short."""

from __future__ import annotations

import numpy as np
import pytest
from test_window_kernels import ALL_AGGS, INT64_MAX, assert_same_fire  # this directory is on sys.path

from flinkcore._core import window_kernels as native
from flinkcore._core._reference import window_kernels as ref


@pytest.mark.parametrize("scale", [1, 100])
def test_session_table_matches_reference_on_long_streams(scale):
    rng = np.random.default_rng(scale)
    for _ in range(150):
        gap = int(rng.integers(1, 30)) * scale
        lateness = int(rng.integers(0, 3)) * int(rng.integers(0, 40)) * scale
        a = native.SessionWindowTable(gap, ALL_AGGS, allowed_lateness=lateness)
        b = ref.SessionWindowTable(gap, ALL_AGGS, allowed_lateness=lateness)
        watermark, now, keys = -(10**9), 0, int(rng.integers(1, 50))
        for _ in range(int(rng.integers(1, 40))):
            n = int(rng.integers(0, 60))
            k = rng.integers(0, keys, n).astype(np.int64)
            ts = (now + rng.integers(-50, 50, n) * scale).astype(np.int64)
            v = rng.random(n)
            late_a = a.update(k, ts, [v], watermark=watermark, return_late=True)
            late_b = b.update(k, ts, [v], watermark=watermark, return_late=True)
            assert late_a.tolist() == late_b.tolist()
            now += int(rng.integers(0, 30)) * scale
            if rng.random() < 0.6:
                watermark = max(watermark, now - int(rng.integers(0, 40)) * scale)
                assert_same_fire(a.fire(watermark), b.fire(watermark))
            if rng.random() < 0.1:
                restored = native.SessionWindowTable(gap, ALL_AGGS, allowed_lateness=lateness)
                restored.restore(a.snapshot())
                a = restored
            assert len(a) == len(b)
        assert_same_fire(a.fire(INT64_MAX), b.fire(INT64_MAX))
        assert len(a) == len(b) == 0
