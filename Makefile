# The commands a newcomer types: `make run` and `make test`. Each does all of its own set-up.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: setup run test bench bench-paper serve clean help

help:
	@echo "make run    - set up, then benchmark the embedded model (single shot, repair R=2) and the template baseline"
	@echo "make test   - set up, then run the test suite against real Docker, Prefect and LLM servers"
	@echo "make bench  - set up, then measure sandbox, judge and orchestration speed"
	@echo "make bench-paper - the paper-size benchmark on simulated hosted models (BENCH_PAPER_ARGS=\"--fraction 0.02\"; add --faults: kill a worker, the server, the client and resume)"
	@echo "make serve  - set up, then serve the nightly scheduled deployment"
	@echo "make setup  - only the set-up (idempotent; scripts/setup.sh STEP for one step)"

setup:
	bash scripts/setup.sh all

# The paper's single shot (round 0), a repair protocol (R=2) and the template baseline on the same items:
# 2 items per tier, environmental with the `detailed` prompt only; at most 6 x 3 = 18 answers of the
# embedded model, so ~15 min on 2 cores (README, "Figures").
RUN_ARGS ?= --tier all --limit 2 --method paper --method detailed --repair-rounds 2
run: setup
	$(BIN)/audioprobe run --model local --model baseline/template $(RUN_ARGS)

test: setup
	set -o pipefail; $(BIN)/python -m pytest --durations=15 $(PYTEST_ARGS) 2>&1 | tee .pytest-last.log

bench: setup
	$(BIN)/python -m tests.bench.run_all

# Issue 23: the paper-size dataset (built once, cached), two simulated hosted models and the template
# baseline, all tiers and methods; prints the issue's figures. On its own Prefect port and data dir.
BENCH_PAPER_ARGS ?=
bench-paper: setup
	AUDIOPROBE_PREFECT_PORT=$${AUDIOPROBE_PREFECT_PORT:-4378} $(BIN)/python -m tests.bench.paper_bench --runner dask --database postgres $(BENCH_PAPER_ARGS)

serve: setup
	$(BIN)/audioprobe serve

clean:
	rm -rf $(VENV) .pytest_cache .pytest-last.log
