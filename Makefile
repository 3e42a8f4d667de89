# mmfeatures: `make demo` and `make test` work on a fresh machine (they set up .venv first).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE ?= 1

SAELENS := .venv-saelens
TOOLS   := .venv-tools
.PHONY: setup browser data demo test test-slow test-compat test-tools mutations notebooks bench studies saes sae-results train-embedded lint clean

setup: $(STAMP)

# Reinstalls only when pyproject.toml changes; a no-op otherwise.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

# The main job on the offline default; ends in reports/demo/index.html (`make demo DEMO_ARGS=--quick`).
demo: setup data
	MPLBACKEND=Agg $(PY) -m mmfeatures demo $(DEMO_ARGS)

# The whole suite, notebooks included (nbval), offline and on CPU. Under 25 min on 2 cores.
# The five longest notebooks (about 2 to 5 minutes each on a cold cache) run in `make test-slow`.
SLOW_NOTEBOOKS := notebooks/02_train_and_evaluate_saes.ipynb notebooks/03_multilingual_features.ipynb \
	notebooks/05_cross_model_matching.ipynb notebooks/06_features_vs_neurons.ipynb notebooks/08_splice_fidelity.ipynb
test: setup browser data
	TQDM_DISABLE=1 MMF_REQUIRE_BROWSER=1 $(PY) -m pytest -m "not slow" --durations=25 --nbval-lax \
		--nbval-sanitize-with notebooks/sanitize.cfg $(SLOW_NOTEBOOKS:%=--ignore=%) tests notebooks

# The corpora from Debian's archive into the user cache (docs/data.md): LibreOffice's help in the built-in languages
# it has (all but ar, fa, sw), Tux Paint's stamps, FreeDict's English dictionaries for 12 built-in languages and the
# fortune cookies of the general-domain corpus; about 240 MB, 4 minutes the first time, a no-op after.
# apt-get's package lists are refreshed once if the fetch cannot find a package (needs root).
data: setup
	@$(PY) -m mmfeatures data fetch || { echo "refreshing apt's package lists (apt-get update) and retrying"; \
		apt-get update -qq && $(PY) -m mmfeatures data fetch; }

# Chromium and the fonts the dashboards' scripts need (CJK, Arabic, Devanagari), from Debian.
browser:
	@{ command -v chromium && fc-list | grep -q "Noto Sans CJK" && fc-list | grep -q "Noto Sans Arabic"; } \
		>/dev/null 2>&1 || { echo "installing Debian's chromium and Noto fonts (needs root: apt-get)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
		fonts-noto-color-emoji fonts-noto-core fonts-noto-cjk unicode-data >/dev/null; }

# Longer checks, kept out of `make test` (includes the SAELens round trip, in its own venv).
test-slow: setup data $(SAELENS)/.installed-stamp
	TQDM_DISABLE=1 MMF_SAELENS_PYTHON=$(SAELENS)/bin/python $(PY) -m pytest -m slow tests
	TQDM_DISABLE=1 $(PY) -m pytest --nbval-lax --nbval-sanitize-with notebooks/sanitize.cfg $(SLOW_NOTEBOOKS)

# Both directions against real SAELens 6.54 (its own venv: it pins transformer-lens and friends).
test-compat: setup $(SAELENS)/.installed-stamp
	MMF_SAELENS_PYTHON=$(SAELENS)/bin/python $(PY) -m pytest -m slow tests/test_saelens_compat.py

$(SAELENS)/.installed-stamp:
	@test -x $(SAELENS)/bin/python || $(PYTHON) -m venv $(SAELENS)
	$(SAELENS)/bin/python -m pip install -q --upgrade pip
	$(SAELENS)/bin/python -m pip install -q sae-lens==6.54.12
	@touch $@

# The sparsify, dictionary_learning and saev readers against SAEs those tools train and save themselves (docs/formats.md).
test-tools: setup $(TOOLS)/.installed-stamp
	MMF_TOOLS_PYTHON=$(TOOLS)/bin/python $(PY) -m pytest -m slow tests/test_sae_tools_compat.py

# One venv for the three tools (1.5 GB, about 90 s the first time): torch 2.13.0 is the CPU wheel on this machine's
# disk. dictionary-learning and saev go in with --no-deps and only what their save/load modules import (their full
# sets add nnsight, torchvision, diffusers, wandb, open-clip, marimo...); tests/tools_side.py stubs nnsight and wandb.
$(TOOLS)/.installed-stamp:
	@test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install -q --upgrade pip
	$(TOOLS)/bin/python -m pip install -q torch==2.13.0 eai-sparsify==1.3.3 einops zstandard beartype jaxtyping
	$(TOOLS)/bin/python -m pip install -q --no-deps dictionary-learning==0.1.0 saev==0.1.0
	@touch $@

# Rebuild the notebooks from their sources (notebooks/NN_*.py, jupytext percent format) and re-execute
# them, storing outputs so GitHub renders them and nbval has the checked outputs.
notebooks: setup
	$(PY) notebooks/build.py
	cd notebooks && TQDM_DISABLE=1 ../$(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace *.ipynb

# Break each verdict's null, baseline and rule, one at a time on a copy of the package, and check that one of its
# controls fails every time (docs/verdicts.md; about 15 minutes on 2 CPU cores).
mutations: setup data
	MPLBACKEND=Agg $(PY) scripts/mutate_verdicts.py

bench: setup $(SAELENS)/.installed-stamp
	@ls benchmarks/bench_*.py >/dev/null 2>&1 || { echo "no benchmarks yet (see benchmarks/README.md)"; exit 0; }; \
	for f in benchmarks/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

# Regenerate docs/results/*.md from real models (about 30 minutes on 2 CPU cores; resumable).
studies: setup data
	MPLBACKEND=Agg $(PY) scripts/matching_study.py
	MPLBACKEND=Agg $(PY) scripts/crossmodal_study.py
	MPLBACKEND=Agg $(PY) scripts/consistency_study.py

# Regenerate docs/results/saes.md: every architecture x 2 widths x 3 L0s x 3 seeds on e5-small and the synthetic
# benchmark, each scored by the eval step (resumable; see the page for the time it took).
sae-results: setup data
	MPLBACKEND=Agg $(PY) scripts/sae_results.py

# Retrain the SAEs shipped in data/saes on the general-domain corpus (datasets/general.py; resumable; the time the
# last build took is in data/saes/README.md).
saes: setup data
	MPLBACKEND=Agg $(PY) scripts/build_saes.py

# Retrain offline:e5-emoji-clip's image tower into data/models/ (about 25 minutes on 2 CPU cores; resumable).
train-embedded: setup
	MPLBACKEND=Agg $(PY) -m mmfeatures train-embedded

lint: setup
	$(VENV)/bin/ruff check mmfeatures tests benchmarks scripts data notebooks/*.py

clean:
	rm -rf $(VENV) $(SAELENS) $(TOOLS) .pytest_cache build *.egg-info
