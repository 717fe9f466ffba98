"""The last transaction of a transactional sink whose input ended is held, pre-committed, until a
checkpoint covers it or the job succeeds (``finish``); never committed on failure or cancel."""

from flinkcore.runtime.operators.two_phase_commit import TwoPhaseCommitSinkOperator
from flinkcore.runtime.testing import OneInputStreamOperatorTestHarness


class _Log:
    """Transactions as lists; what is committed, in order."""

    def __init__(self):
        self.committed = []
        self.aborted = []
        self.pre_committed = []
        self.n = 0

    def begin_transaction(self):
        self.n += 1
        return f"t{self.n}"

    def invoke(self, txn, value, context):
        pass

    def pre_commit(self, txn):
        self.pre_committed.append(txn)

    def commit(self, txn):
        self.committed.append(txn)

    def abort(self, txn):
        self.aborted.append(txn)


def _opened():
    log = _Log()
    op = TwoPhaseCommitSinkOperator(log)
    OneInputStreamOperatorTestHarness(op).open()
    return log, op


def test_input_end_holds_the_last_transaction_until_the_job_succeeds():
    log, op = _opened()
    op.prepare_snapshot_pre_barrier(1)  # t1 waits for checkpoint 1
    op.end_input()  # t2 pre-committed, held
    assert log.pre_committed == ["t1", "t2"] and log.committed == []
    op.finish()
    assert log.committed == ["t1", "t2"]
    op.close()
    assert log.aborted == []


def test_a_checkpoint_after_the_input_ended_takes_the_held_transaction():
    log, op = _opened()
    op.end_input()
    op.prepare_snapshot_pre_barrier(4)
    assert op.snapshot_operator_state() == {"pending": [(4, "t1")], "open": None}
    op.prepare_snapshot_pre_barrier(5)  # nothing more to hold
    op.notify_checkpoint_complete(4)
    assert log.committed == ["t1"]
    op.finish()
    assert log.committed == ["t1"]


def test_failure_after_the_input_ended_commits_nothing():
    log, op = _opened()
    op.end_input()
    op.close()  # a failure or cancel: no finish
    assert log.committed == [] and log.aborted == []
