# offgate: `make demo` and `make test` are all a newcomer needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# 32-bit MicroPython (webassembly port, npm) for tests/wasm/test_wasm32.py; needs Node.js + npm
WASM_STAMP := tests/wasm/node_modules/.installed
# the rider wallet's JavaScript libraries (cborg, uqr; npm, pinned), served by `offgate serve`
WEB_DIR    := host_tools/offgate_host/web
WEB_STAMP  := $(WEB_DIR)/node_modules/.installed

.PHONY: venv demo test bench mpy clean wasm web serve

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

web: $(WEB_STAMP)

$(WEB_STAMP): $(WEB_DIR)/package.json $(WEB_DIR)/package-lock.json
	npm ci --prefix $(WEB_DIR) --no-audit --no-fund
	touch $(WEB_STAMP)

demo: $(STAMP)
	$(BIN)/offgate demo

serve: $(STAMP) $(WEB_STAMP)
	$(BIN)/offgate serve

test: $(STAMP) $(WASM_STAMP) $(WEB_STAMP)
	$(BIN)/python -m pytest -q tests

# ONLY is checked before npm installs anything; the web wallet's packages only for its section
bench: $(STAMP)
	@$(BIN)/python bench/run.py --check $(if $(ONLY),--only $(ONLY))
	$(if $(or $(if $(ONLY),,all),$(findstring wallet,$(ONLY))),@$(MAKE) --no-print-directory web)
	$(BIN)/python bench/run.py $(if $(ONLY),--only $(ONLY))

clean:
	rm -rf $(VENV) build .pytest_cache $(WEB_DIR)/node_modules

# ---- ESP32 gate: build, flash, deploy, provision (docs/hardware.md) ----------------------
# make mpy BOARD=esp32_devkitc                     -> build/<board>/ (.mpy for the board, manifest.py)
# make flash BOARD=... PORT=/dev/ttyUSB0 FIRMWARE=ESP32_GENERIC-....bin  (micropython.org/download/<board>/)
# make deploy BOARD=... PORT=... GATE_ID=7 ZONE=1 [DATA=./offgate-data] [DEPLOY_ARGS=--dry-run]
BOARD    ?= esp32_devkitc
PORT     ?=
FIRMWARE ?=
GATE_ID  ?=
ZONE     ?=
DATA     ?= ./offgate-data
BOARDS   := $(basename $(notdir $(wildcard board_configs/*.json)))

.PHONY: mpy mpy-all board-validate flash deploy provision

mpy: $(STAMP)
	$(BIN)/offgate board build $(BOARD)

mpy-all: $(STAMP)
	@for b in $(BOARDS); do $(BIN)/offgate board build $$b || exit 1; done

board-validate: $(STAMP)
	$(BIN)/offgate board validate board_configs/*.json

flash: $(STAMP)
	@test -n "$(FIRMWARE)" || { echo "make flash: FIRMWARE=<MicroPython .bin> is required: download it from https://micropython.org/download/ (ESP32_GENERIC, ESP32_GENERIC_S3; see docs/hardware.md)"; exit 2; }
	@test -f "$(FIRMWARE)" || { echo "make flash: $(FIRMWARE): no such file"; exit 2; }
	@test -n "$(PORT)" || { echo "make flash: PORT=<serial port> is required, e.g. PORT=/dev/ttyUSB0"; exit 2; }
	$(BIN)/offgate board flash --board $(BOARD) --port $(PORT) --firmware $(FIRMWARE)

deploy: mpy
	@test -n "$(PORT)" || { echo "make deploy: PORT=<serial port> is required, e.g. PORT=/dev/ttyUSB0"; exit 2; }
	@test -n "$(GATE_ID)" -a -n "$(ZONE)" || { echo "make deploy: GATE_ID=<n> and ZONE=<n> are required"; exit 2; }
	$(BIN)/offgate deploy --data $(DATA) --board $(BOARD) --port $(PORT) --gate-id $(GATE_ID) --zone $(ZONE) $(DEPLOY_ARGS)

provision: $(STAMP)
	@test -n "$(PORT)" -a -n "$(GATE_ID)" || { echo "make provision: PORT=<serial port> and GATE_ID=<n> are required"; exit 2; }
	$(BIN)/offgate provision --data $(DATA) --board $(BOARD) --port $(PORT) --gate-id $(GATE_ID) $(DEPLOY_ARGS)
