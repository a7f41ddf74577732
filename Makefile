# `make run`: install into .venv (if needed) and run the default experiment; `make test`: install and test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.alimb-installed

.PHONY: install run test bench clean

install: $(STAMP)

# reinstall when the dependencies or their pins change; constraints.txt is the one place with pins
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

run: install
	$(BIN)/alimb
	$(BIN)/alimb-report outputs/default/digits --out outputs/default/report

test: install
	WANDB_MODE=offline $(BIN)/python -m pytest

clean:
	rm -rf $(VENV) outputs
