"""Pure-Python references of the native kernels in ``flinkcore._core``.

Each module here has the same public API as its native twin and is written for clarity, not
speed; the tests in ``tests/_core`` run against both and compare them.
"""
