# `make run`: install into .venv (if needed) and run the default experiment; `make test`: install and test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.alimb-installed

.PHONY: install run test test-long test-slurm test-labelstudio clean gpu-check gpu-wheels

install: $(STAMP)

# reinstall when the dependencies or their pins change; constraints.txt is the one place with pins
$(STAMP): pyproject.toml setup.py constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

# the paper's point in under a minute: DMCS-rand against random, margin and BADGE on the bundled digits, 3 seeds
run: install
	$(BIN)/alimb -m experiment=quickstart
	$(BIN)/alimb-report outputs/quickstart

test: install
	WANDB_MODE=offline $(BIN)/python -m pytest

# the end-to-end checks of a minute or more (the GPU check's whole script on CPU): CI runs them beside `make test`
test-long: install
	WANDB_MODE=offline $(BIN)/python -m pytest -m long

# sweeps on a real single-node Slurm cluster it starts and stops (root; installs Debian's slurm and munge if missing)
test-slurm: install
	PYTHON=$(BIN)/python bash scripts/test_slurm.sh

# tests_labelstudio/ against a real Label Studio server on 127.0.0.1 that the tests start and stop. The server gets
# its own venv (~1 GB, no torch; pins in tests_labelstudio/server-constraints.txt): alimb's stays light and talks
# to it over HTTP with requests. Install ~1 min, first server start (migrations) 25-90 s, the suite ~1 min more.
LS_VENV ?= .venv-ls
LS_STAMP := $(LS_VENV)/.label-studio-installed

$(LS_STAMP): tests_labelstudio/server-constraints.txt
	test -x $(LS_VENV)/bin/python || $(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install --quiet -c tests_labelstudio/server-constraints.txt label-studio
	$(LS_VENV)/bin/python -c "import importlib.util as u, sys; sys.exit('label-studio pulled in torch' if u.find_spec('torch') else 0)"
	touch $@

test-labelstudio: install $(LS_STAMP)
	LABEL_STUDIO_BIN=$(abspath $(LS_VENV))/bin/label-studio WANDB_MODE=offline $(BIN)/python -m pytest tests_labelstudio -p no:cacheprovider

# on a GPU machine (no network there): carry wheels/ along, then `make gpu-check` (<= 8 min on one H100)
gpu-check:
	bash scripts/gpu_check.sh --out gpu_check_out

# where a registry is reachable: the pure-Python wheels (and cp312 binaries) the GPU machine lacks, ~27 MB
GPU_PY ?= 3.12
gpu-wheels: install
	mkdir -p wheels
	$(BIN)/python -m pip wheel --quiet --no-deps -w wheels antlr4-python3-runtime==4.9.3  # sdist only upstream
	$(BIN)/python -m pip download --quiet --dest wheels --find-links wheels --python-version $(GPU_PY) \
	  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
	  --only-binary=:all: -c constraints.txt hydra-core omegaconf wandb submitit hydra-joblib-launcher \
	  hydra-submitit-launcher pydantic

clean:
	rm -rf $(VENV) $(LS_VENV) outputs
