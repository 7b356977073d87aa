# wazuh-virustotal-ip - every command a developer or CI needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.requirements.stamp

.PHONY: help venv lint pytest test bench demo standin-image clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 9))' || \
	  { echo "error: $(PYTHON) is older than 3.9; install python3 (Debian: apt-get install python3 python3-venv)" >&2; exit 1; }
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV) || \
	  { echo "error: cannot create $(VENV); on Debian: apt-get install python3-venv" >&2; exit 1; }
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

venv: $(STAMP) ## create .venv from requirements.txt (done by every target that needs it)

lint: $(STAMP) ## ruff on the Python, sh -n on the shell scripts
	$(BIN)/ruff check files/custom-virustotal_ip.py tests bench
	sh -n files/custom-virustotal_ip
	sh -n tests/standin/image/install.sh
	bash -n tests/standin/build.sh

pytest: $(STAMP) ## pytest: the integration, and the stand-in image when Docker answers (required with CI=true)
	$(BIN)/python -m pytest

test: lint pytest ## every test

bench: $(STAMP) ## benchmarks: cache-hit cost, request storm, time bound (prints ratios)
	$(BIN)/python bench/run.py

demo: $(STAMP) ## the integration end to end on this machine (local VT v3 stand-in)
	$(BIN)/python tests/demo.py

standin-image: ## build localhost/wazuh-manager-standin:4.14 offline (debootstrap + docker import)
	tests/standin/build.sh

clean: ## remove the venv and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache
