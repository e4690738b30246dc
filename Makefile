# One entry point per job; the README's quick start calls `make demo` and `make test`.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-fast bench bench-qsm bench-ivim bench-spio bench-rim train-qsm train-qsmgan train-ivim train-spio train-rim lint clean

install: $(STAMP)

$(STAMP): pyproject.toml tools/install.sh
	bash tools/install.sh

demo: $(STAMP)
	$(PY) -m lightning_modules.qsm.demo --output_dir demo_output

test: $(STAMP)
	$(PY) -m pytest -q tests

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" tests

bench: bench-qsm bench-ivim bench-spio bench-rim

bench-qsm: $(STAMP)
	$(PY) benchmarks/qsm_solvers.py
	$(PY) benchmarks/qsm_classical.py --iterations 200
	$(PY) benchmarks/qsm_accuracy.py

bench-ivim: $(STAMP)
	$(PY) benchmarks/ivim_accuracy.py --max_epochs 20 --n_dipy 500

bench-spio: $(STAMP)
	$(PY) benchmarks/spio_accuracy.py

bench-rim: $(STAMP)
	$(PY) benchmarks/rim_accuracy.py

# Reproduce the shipped learned-NDI weights (CPU, ~35 min); scale out with e.g.
# $(PY) -m monai.bundle run --config_file monai_bundles/qsm_dipole_inversion/configs/train.json --trainer#devices 4 --trainer#strategy ddp
train-qsm: $(STAMP)
	$(PY) -m monai.bundle run --config_file monai_bundles/qsm_dipole_inversion/configs/train.json

train-qsmgan: $(STAMP)
	$(PY) -m monai.bundle run --config_file monai_bundles/qsm_dipole_inversion/configs/train_qsmgan.json

# The other bundles' training recipes (options and wall times in each bundle's docs/README.md)
train-ivim: $(STAMP)
	$(PY) -m monai.bundle run --config_file monai_bundles/ivim_mapping/configs/train.json

train-spio: $(STAMP)
	$(PY) -m monai.bundle run --config_file monai_bundles/spio_quantification/configs/train.json

train-rim: $(STAMP)
	$(PY) -m monai.bundle run --config_file monai_bundles/rim_lesion_detection/configs/train.json

lint: $(STAMP)
	$(PY) -m ruff check lightning_modules tests benchmarks QSMSlicerExtension

clean:
	rm -rf demo_output .pytest_cache
