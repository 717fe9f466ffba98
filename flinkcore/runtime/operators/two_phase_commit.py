"""Transactional sinks: Flink's two-phase commit, driven by checkpoints.

Records of one checkpoint interval go into one transaction. At a checkpoint the transaction is
pre-committed (flushed, made durable but invisible) and remembered as pending under the
checkpoint's id, and a new one begins; it is committed only when that checkpoint completes. The
pending and the open transaction are part of the operator's state, so after a failure the
restored operator commits what a completed checkpoint had pre-committed (``recover_and_commit``,
which must be idempotent: the commit may have happened before the crash) and aborts the
transaction that was open (``recover_and_abort``). When the sink's input ends its last transaction
is pre-committed and held: a later completed checkpoint commits it (its snapshot has the source at
its end), else the job's successful end (``finish``). Committing it at once would make records
visible that a restore from an earlier checkpoint replays, while other subtasks of the job still
run and may fail (Flink waits for a final checkpoint, FLIP-147).

The function is duck-typed (``begin_transaction``, ``invoke(txn, value, context)``,
``pre_commit``, ``commit``, ``abort``, optional ``recover_and_commit`` / ``recover_and_abort``
and ``invoke_batch(txn, values)`` for sinks that write a whole micro-batch at once);
users subclass :class:`flinkcore.datastream.functions.TwoPhaseCommitSinkFunction`.
"""

from __future__ import annotations

from typing import Any

from flinkcore.runtime.operators.base import UserCodeError
from flinkcore.runtime.operators.udf import SinkOperator

__all__ = ["TwoPhaseCommitSinkOperator"]


class TwoPhaseCommitSinkOperator(SinkOperator):
    """A sink operator whose records go into the open transaction of its function."""

    def __init__(self, sink: Any, name: str = "TwoPhaseCommitSink") -> None:
        super().__init__(self._invoke_in_transaction, sink, name)
        self.sink = sink
        self.transaction: Any = None
        #: checkpoint id -> pre-committed transaction waiting for that checkpoint to complete
        self.pending: dict[int, Any] = {}
        #: the last transaction, pre-committed when the input ended (see the module doc)
        self.final: Any = None
        self._restored: list = []

    def _invoke_in_transaction(self, value: Any, context: Any) -> None:
        self.sink.invoke(self.transaction, value, context)

    # -- life cycle ---------------------------------------------------------------------------
    def open(self) -> None:
        super().open()
        if getattr(self.sink, "invoke_batch", None) is not None:  # writes whole batches (FileSink)
            self.process_batch = self._process_whole_batch  # type: ignore[method-assign]
        for state in self._restored:
            if state is None:
                continue
            for _, txn in sorted(state["pending"]):
                self._call("recover_and_commit", txn)
            if state["open"] is not None:
                self._call("recover_and_abort", state["open"])
        self._restored = []
        self.transaction = self._call("begin_transaction")

    def _call(self, method: str, *args: Any) -> Any:
        fn = getattr(self.sink, method, None)
        if fn is None and method.startswith("recover_and_"):
            fn = getattr(self.sink, method[len("recover_and_") :])
        try:
            return fn(*args)
        except Exception as e:
            raise UserCodeError(
                self.name, args[0] if args else None, e, where=f"{method}() of transaction"
            ) from e

    def _process_whole_batch(self, values: list, timestamps: list | None) -> None:
        try:
            self.sink.invoke_batch(self.transaction, values)
        except Exception as e:
            raise UserCodeError(self.name, values[0] if values else None, e, where="batch starting at") from e

    def end_input(self) -> None:
        """The input ended: the last transaction is pre-committed and held (see the module doc)."""
        self._call("pre_commit", self.transaction)
        self.final, self.transaction = self.transaction, None

    def finish(self) -> None:
        """The job succeeded: everything pre-committed becomes visible."""
        for checkpoint_id in sorted(self.pending):
            self._call("commit", self.pending.pop(checkpoint_id))
        if self.final is not None:
            final, self.final = self.final, None
            self._call("commit", final)

    def close(self) -> None:
        """On cancel or failure the open transaction is aborted; pre-committed ones stay for
        recovery (their checkpoint may have completed)."""
        if self.transaction is not None:
            txn, self.transaction = self.transaction, None
            self._call("abort", txn)
        super().close()

    # -- checkpoints --------------------------------------------------------------------------
    def prepare_snapshot_pre_barrier(self, checkpoint_id: int) -> None:
        if self.transaction is None:  # the input ended: the held transaction waits for this checkpoint
            if self.final is not None:
                self.pending[checkpoint_id], self.final = self.final, None
            return
        self._call("pre_commit", self.transaction)
        self.pending[checkpoint_id] = self.transaction
        self.transaction = self._call("begin_transaction")

    def snapshot_operator_state(self) -> Any:
        return {"pending": sorted(self.pending.items()), "open": self.transaction}

    def restore_operator_state(self, states: list) -> None:
        """Former instances' transactions are spread round-robin over the new ones (operator
        list state), so each is recovered exactly once at any new parallelism."""
        index, parallelism = self.context.subtask_index, self.context.parallelism
        self._restored = [s for j, s in enumerate(states) if j % parallelism == index]

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        for done in sorted(i for i in self.pending if i <= checkpoint_id):
            self._call("commit", self.pending.pop(done))
