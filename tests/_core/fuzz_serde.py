"""Atheris fuzz target for the record decoder (not collected by pytest; run by hand).

    .venv/bin/python tests/_core/fuzz_serde.py -max_total_time=120 <a copy of tests/_core/corpus>

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
    for fn in ("loads", "loads_batch"):  # single values and batches (value and row-block layouts)
        outcomes = []
        for s in (native, ref):
            try:
                outcomes.append(("ok", getattr(s, fn)(data, allow_pickle=False)))
            except s.SerdeError:
                outcomes.append(("error", None))
        if outcomes[0][0] != outcomes[1][0]:
            raise AssertionError(f"native and reference {fn} disagree on {data!r}: {outcomes}")
        if outcomes[0][0] == "ok" and repr(outcomes[0][1]) != repr(outcomes[1][1]):
            raise AssertionError(f"native and reference {fn} decode {data!r} differently: {outcomes}")


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
