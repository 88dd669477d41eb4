# offgate: `make demo` and `make test` are all a newcomer needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# 32-bit MicroPython (webassembly port, npm) for tests/test_wasm32.py; needs Node.js + npm
WASM_STAMP := tests/wasm/node_modules/.installed

.PHONY: venv demo test bench mpy clean wasm

venv: $(STAMP)

$(STAMP): requirements.txt host_tools/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e host_tools
	touch $(STAMP)

wasm: $(WASM_STAMP)

$(WASM_STAMP): tests/wasm/package.json tests/wasm/package-lock.json
	npm ci --prefix tests/wasm --no-audit --no-fund
	touch $(WASM_STAMP)

demo: $(STAMP)
	$(BIN)/offgate demo

test: $(STAMP) $(WASM_STAMP)
	$(BIN)/python -m pytest -q tests

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build .pytest_cache
