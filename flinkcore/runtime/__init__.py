"""The runtime: runs a :class:`~flinkcore.runtime.graph.StreamGraph` as chained tasks.

Contracts others build on: :mod:`flinkcore.runtime.operators.base` (operators),
:mod:`flinkcore.runtime.timers` (timer service), :mod:`flinkcore.runtime.processing_time`,
:mod:`flinkcore.runtime.testing` (operator test harnesses), :mod:`flinkcore.runtime.graph`
(job graph), :mod:`flinkcore.runtime.sources` (sources) and :mod:`flinkcore.runtime.executor`.
"""
