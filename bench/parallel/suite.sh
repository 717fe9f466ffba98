#!/usr/bin/env bash
# The parallel bars of bench/README.md (Parallel) in one go: run.py's parts at the sizes the README
# reports, then the machine's own ceilings (independent.py, split by stride and by key). Each
# part prints its own calibration line ("cores available"): read a part's ratios against it.
# The columnar runs take about a second each and this VM drifts by 30% within minutes: 7 repeats.
#   bench/parallel/suite.sh [OUT_DIR]       (about 7 minutes on this machine; nothing else should run meanwhile)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-/tmp/flinkcore-parallel-suite}
mkdir -p "$out"
py=.venv/bin/python
run() { echo "== $*" | tee -a "$out/suite.log"; "$py" "$@" 2>&1 | tee -a "$out/suite.log"; }
date -u | tee "$out/suite.log"
git log -1 --oneline | tee -a "$out/suite.log"
run bench/parallel/run.py --n 10000000 --repeats 5 --jobs w3-udf,w2-udf-aggregate,w2-udf --two-phase on
run bench/parallel/run.py --n 100000000 --repeats 7 --jobs w2-columnar,w2-columnar-batch-sink,w2-columnar-slot-sink --two-phase on
run bench/parallel/run.py --n 20000000 --repeats 7 --jobs w3-columnar,w3-columnar-batch-sink,w3-columnar-slot-sink --two-phase on
run bench/parallel/independent.py --n 100000000 --repeats 3 --job w2-columnar-batch-sink
run bench/parallel/independent.py --n 20000000 --repeats 3 --job w3-columnar --split key
date -u | tee -a "$out/suite.log"
