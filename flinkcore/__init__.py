"""flinkcore: Apache Flink's stream-processing model for Python, with no JVM.

The user API mirrors PyFlink's DataStream API: replace ``pyflink`` with ``flinkcore`` in the
imports. Hot paths run in compiled C (``flinkcore._core`` over ``_native/``).
"""

from flinkcore._version import __version__
from flinkcore.jit import jit  # numba itself is imported only when a jit function first runs on columns

__all__ = ["__version__", "jit"]
