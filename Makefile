# Two commands set up a fresh machine: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# torch comes from the CPU wheel on local disk; installing it first keeps pip from
# pulling a multi-GB CUDA build when a later dependency asks for torch.
TORCH  := torch==2.13.0
# torchattacks is a test and benchmark peer; its own requirements would replace torch.
TORCHATTACKS := torchattacks==3.5.1

.PHONY: demo test lint typecheck unit clean system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.demo: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[demo]'
	touch $@

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[demo,robustness,sklearn,dev]'
	$(BIN)/pip install --quiet --no-deps $(TORCHATTACKS)
	touch $@ $(VENV)/.demo

demo: system-deps $(VENV)/.demo
	$(BIN)/bastion demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

system-deps:
	bash .ci/system-deps

# One pytest worker per core (pytest-xdist): most tests wait on real servers and processes.
test: system-deps lint typecheck
	$(BIN)/pytest -n auto --dist worksteal $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
