# Two commands do everything on a fresh machine with Python 3.11:
#   make demo   - create .venv, write a demo corpus, analyse it on the embedded servers, show results
#   make test   - create .venv, run the whole test suite (what CI runs)
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo-corpus
VOICED ?= ../shared/data/voiced

.PHONY: venv demo test test-fast bench model clean-services

venv: $(VENV)/.installed

# The last steps compile the numba kernels into their on-disk cache (~16 s once), not in the first run's
# workers, and the project's modules to bytecode: where PYTHONDONTWRITEBYTECODE is set (many container
# images), every worker process would otherwise compile them again at each start (~1 s of CPU each).
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==25.3
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,kubernetes]'
	$(BIN)/python -c "from features.extract import warm_up; warm_up()"
	$(BIN)/python -m compileall -q voxflow features models store tasks flows dashboard
	touch $@

demo: venv
	$(BIN)/voxflow demo-corpus $(DEMO_DIR)
	$(BIN)/voxflow analyze $(DEMO_DIR)
	$(BIN)/voxflow quarantine --limit 10
	$(BIN)/voxflow results --limit 10

test: venv
	$(BIN)/python -m pytest -q -ra -n 2 --dist loadgroup

test-fast: venv
	$(BIN)/python -m pytest -q -ra -n 2 --dist loadgroup -m "not slow"

# Rebuild the shipped baseline model from the VOICED recordings.
model: venv
	$(BIN)/voxflow voiced-manifest $(VOICED) -o $(VENV)/voiced-manifest.csv
	$(BIN)/voxflow train $(VENV)/voiced-manifest.csv --voiced --out models/baseline

bench: venv
	$(BIN)/python bench/e2e.py

clean-services: venv
	$(BIN)/voxflow services stop
