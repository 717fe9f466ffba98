"""Atheris fuzz target for the record decoder (not collected by pytest; run by hand).

    .venv/bin/python tests/_core/fuzz_serde.py -max_total_time=120 tests/_core/corpus

Any exception other than SerdeError, or a crash, is a bug. The native decoder gets no coverage
feedback unless the extension is built with -fsanitize=fuzzer; the reference decoder (instrumented)
steers the mutations through the format, and both must agree on every input.
"""

import sys

import atheris

with atheris.instrument_imports():
    from flinkcore._core._reference import serde as ref

from flinkcore._core import serde as native


def one_input(data: bytes) -> None:
    outcomes = []
    for s in (native, ref):
        try:
            s.loads(data, allow_pickle=False)
            outcomes.append("ok")
        except s.SerdeError:
            outcomes.append("error")
    if outcomes[0] != outcomes[1]:
        raise AssertionError(f"native and reference disagree on {data!r}: {outcomes}")


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
