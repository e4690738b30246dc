# One entry point per job; the README's quick start calls `make demo` and `make test`.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-fast bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml tools/install.sh
	bash tools/install.sh

demo: $(STAMP)
	$(PY) -m lightning_modules.qsm.demo --output_dir demo_output

test: $(STAMP)
	$(PY) -m pytest -q tests

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" tests

bench: $(STAMP)
	$(PY) benchmarks/qsm_solvers.py
	$(PY) benchmarks/qsm_accuracy_classical.py

lint: $(STAMP)
	$(PY) -m ruff check lightning_modules tests benchmarks QSMSlicerExtension

clean:
	rm -rf demo_output .pytest_cache
