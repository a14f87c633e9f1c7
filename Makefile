# lqer-hw: one-command set-up, tests, simulation, synthesis.
# `make test` on a fresh machine creates .venv, installs the pinned set, runs the tests.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
JOBS   ?= 2

.PHONY: setup eval sweep test test-fast sim regress synth pnr bench docs docs-cost default-model clean help

help:
	@echo "make setup    create .venv and install the pinned dependencies"
	@echo "make eval     perplexity of the embedded model, L2QER W4A8 rank 32, vs float"
	@echo "make sweep    area against perplexity, every method on the embedded model -> build/sweep/"
	@echo "make test     set up, then run the test suite (what CI runs)"
	@echo "make sim      cocotb benches only (Icarus and Verilator)"
	@echo "make regress  the same benches with LQER_VECTORS=1000000: a million vectors per unit bench, a million tokens per layer on Verilator (long: hours on 2 cores)"
	@echo "make synth    Yosys resource reports of the default design set -> build/synth/"
	@echo "make pnr      nextpnr place and route (ECP5, iCE40) -> Fmax"
	@echo "make bench    benchmarks (ratios measured in one run)"
	@echo "make docs     rewrite the result tables of README.md and docs/ from the code (runs make sweep; hardware tables from build/synth, build/pnr)"
	@echo "make docs-cost  rewrite the cost tables of README.md and docs/cost.md (LLaMA-7B)"

$(PY):
	$(PYTHON) -m venv $(VENV)

# Re-installs only when the dependency pins or the project metadata change.
$(STAMP): pyproject.toml requirements.lock | $(PY)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -c requirements.lock "torch==2.13.0"
	$(PY) -m pip install --quiet -c requirements.lock -e .
	touch $(STAMP)

setup: $(STAMP)

# The main job on the embedded default model: float, then L2QER W4A8 (rank 32, block 16).
eval: setup
	$(VENV)/bin/lqer-hw eval --model default --data default
	$(VENV)/bin/lqer-hw eval --model default --data default --method l2qer --rank 32 \
		--w-width 4 --a-width 8 --block 16 --calib default

# The default sweep (sweep/default.toml): 31 points, resumable; prints where its outputs are.
sweep: setup
	$(VENV)/bin/lqer-hw sweep default -o build/sweep -j $(JOBS)

test: setup
	$(PY) -m pytest -n $(JOBS) -q

test-fast: setup
	$(PY) -m pytest -n $(JOBS) -q -m "not sim and not synth and not slow"

sim: setup
	$(PY) -m pytest -n $(JOBS) -q -m sim

regress: setup
	LQER_VECTORS=1000000 $(PY) -m pytest -n $(JOBS) -q -m sim --timeout 0

synth: setup
	$(VENV)/bin/lqer-hw synth --default -j $(JOBS) -o build/synth --overwrite

pnr: setup
	$(VENV)/bin/lqer-hw pnr --default -j $(JOBS) -o build/pnr --overwrite

bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# The perplexity tables of README.md and docs/sw.md, bit-true figures included (~8 minutes),
# and the README's sweep excerpt and plot from the default sweep (make sweep).
docs: sweep
	$(PY) scripts/docs_tables.py --bit-true --sweep build/sweep
	$(PY) scripts/hw_tables.py

# The cost tables of README.md and docs/cost.md (LLaMA-7B, xc7-nodsp; cold: synthesises the parts).
docs-cost: setup
	$(PY) scripts/cost_tables.py

# Re-train the embedded model (deterministic; about 15 minutes on 2 cores).
default-model: setup
	$(PY) scripts/train_default_model.py

clean:
	rm -rf build .pytest_cache .hypothesis
