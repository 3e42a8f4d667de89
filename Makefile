# mmfeatures: `make demo` and `make test` work on a fresh machine (they set up .venv first).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE ?= 1

.PHONY: setup demo test test-slow bench lint clean

setup: $(STAMP)

# Reinstalls only when pyproject.toml changes; a no-op otherwise.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

demo: setup
	$(PY) -m mmfeatures demo

# The whole suite, notebooks included (nbval), offline and on CPU. Under 25 min on 2 cores.
test: setup
	TQDM_DISABLE=1 $(PY) -m pytest -m "not slow" --nbval-lax tests notebooks

# Longer checks, kept out of `make test`.
test-slow: setup
	TQDM_DISABLE=1 $(PY) -m pytest -m slow tests

bench: setup
	@ls benchmarks/bench_*.py >/dev/null 2>&1 || { echo "no benchmarks yet (see benchmarks/README.md)"; exit 0; }; \
	for f in benchmarks/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

lint: setup
	$(VENV)/bin/ruff check mmfeatures tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
