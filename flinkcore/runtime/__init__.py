"""The runtime: runs a :class:`~flinkcore.runtime.graph.StreamGraph`; knows nothing of the API.

Contracts others build on:

* :mod:`flinkcore.runtime.operators.base` — the operator contract (micro-batches in, in-band
  watermarks / idleness / end of input, side outputs, snapshot and restore);
* :mod:`flinkcore.runtime.timers` — the timer service (event/processing time, per key and
  namespace, de-duplicated, ordered) and :mod:`flinkcore.runtime.processing_time`;
* :mod:`flinkcore.runtime.testing` — operator test harnesses;
* :mod:`flinkcore.runtime.graph` — the job graph; :mod:`flinkcore.runtime.sources` — sources.

How a graph runs in one process: :mod:`flinkcore.runtime.executor` wires one instance per node
and parallel subtask, :mod:`flinkcore.runtime.exchange` partitions between them and merges
watermarks in input gates, and :mod:`flinkcore.runtime.fusion` turns stateless map/filter chains
into one loop per batch.
"""
