# PitWall: `make demo` runs the product, `make test` runs every test. Both install what is
# missing first and skip what is already there (stamps under .venv/).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# chromium: the post-race report renders its figures with it (kaleido)
APT_RUNTIME := redis-server chromium
APT_TEST := redis-server chromium chromium-driver poppler-utils

.PHONY: demo test install install-test apt-runtime apt-test lint clean help

help:
	@echo "make demo   - install what is missing and run PitWall (http://127.0.0.1:8050)"
	@echo "make test   - install what the tests need and run the whole suite"

# Debian packages: installed only when a binary is missing.
apt-runtime:
	@{ command -v redis-server && command -v chromium; } >/dev/null || { echo "installing $(APT_RUNTIME)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_RUNTIME) >/dev/null; }

apt-test: apt-runtime
	@{ command -v chromium && command -v chromedriver && command -v pdftoppm; } >/dev/null || { \
	  echo "installing $(APT_TEST)"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_TEST) >/dev/null; }

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Re-run pip only when the dependency files change.
$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install -q -c constraints.txt -e .
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	@touch $@

install: apt-runtime $(VENV)/.installed
install-test: apt-test $(VENV)/.installed-test

demo: install
	PITWALL_AUTH=off PITWALL_HTTP_HOST=127.0.0.1 $(BIN)/pitwall up   # open access, loopback only

# `make test`: every test, in three parts, all always run, failing if any fails:
# 1. the simulator's numba kernel is compiled once into its on-disk cache (`pitwall simulate`, ~25 s
#    of CPU), so the test processes load it instead of each compiling it at the same time;
# 2. the bulk on 3 workers (a test file stays on one worker: its module fixtures are built once; the
#    longest files first, see tests/conftest.py) and, beside it in its own pytest, the 3-minute soak
#    (marker `soak`: loss, equality and memory limits, no latency bound); the bulk mostly waits on
#    real processes, so 3 workers fit 2 cores;
# 3. the `serial` tests (latency, rate and kill-timing assertions: the Redis/flood/web-restart
#    faults, the cluster) alone.
PYTEST := OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q --headless --durations=30
WARM := OMP_NUM_THREADS=1 $(BIN)/python -m engine.cli simulate --tumftm data/tumftm/pars_Spielberg_2019.ini --races 300 --json

test: install-test
	$(WARM) >/dev/null || echo "make test: the numba warm-up failed (each test process compiles for itself)"
	soaklog=$$(mktemp); \
	$(PYTEST) -m soak >$$soaklog 2>&1 & soakpid=$$!; \
	$(PYTEST) -n 3 --dist loadfile --no-loadscope-reorder -m "not serial and not soak"; bulk=$$?; \
	wait $$soakpid; soak=$$?; echo "--- the soak, run beside the bulk:"; cat $$soaklog; rm -f $$soaklog; \
	$(PYTEST) -m serial; serial=$$?; \
	echo "make test: bulk exit $$bulk, soak exit $$soak, serial exit $$serial"; \
	[ $$bulk -eq 0 ] && [ $$soak -eq 0 ] && [ $$serial -eq 0 ]

clean:
	rm -rf $(VENV) var .pytest_cache
