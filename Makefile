# Two commands on a fresh machine with Python 3.10+ and make: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint bench bench-smoke clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[test,hpc,bench]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/file_scoring/make_data.py
	rm -rf daskprs-runs/demo-file-scoring  # the demo starts afresh each time
	$(BIN)/daskprs run examples/file_scoring/job.yml --run-dir daskprs-runs/demo-file-scoring
	@echo
	@echo "Outputs: daskprs-runs/demo-file-scoring/outputs/scores/parallel_run_step.txt"
	@echo "Report:  daskprs-runs/demo-file-scoring/logs/job_result.txt"

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

bench-smoke: $(STAMP)
	$(BIN)/python benchmarks/run_all.py --smoke

clean:
	rm -rf $(VENV) daskprs-runs .pytest_cache
