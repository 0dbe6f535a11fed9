# Two commands on a fresh clone: `make demo` and `make test`. Each creates .venv if missing
# and installs the package with its train, text and dev extras first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.hf-edge-installed

.PHONY: install demo test test-all clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[train,text,dev]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/hf-edge train-and-export

test: $(STAMP)
	$(BIN)/python -m pytest

# opt-in suites: end-to-end runs and the podman container build
test-all: $(STAMP)
	$(BIN)/python -m pytest -m "not gpu"

clean:
	rm -rf runs .pytest_cache build *.egg-info
