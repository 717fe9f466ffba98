"""flinkcore's workload benchmarks (shared/WORKLOADS.md), run by ``flinkcore bench``.

- ``data``: the event generator every system shares (exact draw order).
- ``reference``: pure-Python (streaming) and numpy (batch) versions: baselines and oracle.
- ``baselines``: runs those and the C -O3 program of ``bench/baselines``.
- ``jobs``: the workloads written with flinkcore's DataStream API, ``udf`` and ``columnar``.
- ``latency``: L1, W1 fed at a fixed rate.
- ``harness`` / ``runner``: pinning, warm-up, repeats, CPU time, peak RSS, cross-checks.
- ``nexmark``: the Nexmark-style generator and queries q0-q8.
"""
