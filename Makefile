# wazuh-virustotal-ip - every command a developer or CI needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
# The Wazuh versions built from source: sources.lock is the one place they are written (the first
# is the current one; the others are proven end to end by molecule).
WAZUH_VERSIONS := $(shell awk '$$1 == "wazuh" {print $$2}' tests/images/wazuh-src/sources.lock)
WAZUH_VERSION ?= $(firstword $(WAZUH_VERSIONS))
BIN := $(VENV)/bin
# Every shell script here, the shipped wrapper among them (shellcheck reads each one's shebang).
SHELL_SCRIPTS := files/custom-virustotal_ip .ci/run tests/pinned-venv.sh tests/script-pythons/make-venvs.sh \
	tests/ansible-cores/make-venvs.sh tests/images/base.sh $(wildcard tests/images/wazuh-src/*.sh tests/images/wazuh-src/cluster/*.sh) \
	tests/images/wazuh-src/bin/install
STAMP := $(VENV)/.requirements.stamp

.PHONY: help venv lint images pytest test bench demo wazuh-image cluster-image molecule demo-clean clean settings collection

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 9))' || \
	  { echo "error: $(PYTHON) is older than 3.9; install python3 (Debian: apt-get install python3 python3-venv)" >&2; exit 1; }
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV) || \
	  { echo "error: cannot create $(VENV); on Debian: apt-get install python3-venv" >&2; exit 1; }
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

venv: $(STAMP) ## create .venv from requirements.txt (done by every target that needs it)

lint: $(STAMP) ## ruff, yamllint, ansible-lint (production), shellcheck, syntax checks, Galaxy's import check, ansible-test sanity
	$(BIN)/ruff check files plugins tests tools bench molecule demo
	$(BIN)/yamllint --strict .
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/ansible-lint --offline
	@# ansible-lint again under every other supported ansible-core (.venv-core-*), with the
	@# collections of requirements.txt's ansible package
	tests/ansible-cores/make-venvs.sh
	for v in .venv-core-*; do [ -x $$v/bin/ansible-lint ] || continue; \
	  PATH="$(CURDIR)/$$v/bin:$$PATH" ANSIBLE_COLLECTIONS_PATH="$(CURDIR)/.collections:$(wildcard $(CURDIR)/$(VENV)/lib/python3*/site-packages)" \
	  $$v/bin/ansible-lint --offline || exit 1; done
	for p in site.yml playbooks/*.yml; do $(BIN)/ansible-playbook --syntax-check -i inventory.example/hosts.yml $$p || exit 1; done
	@command -v shellcheck >/dev/null || { echo "error: shellcheck is not installed (Debian: apt-get install shellcheck)" >&2; exit 1; }
	shellcheck -x $(SHELL_SCRIPTS)
	$(BIN)/antsibull-changelog lint
	@# Galaxy's own import check and ansible-test sanity (under each supported ansible-core), on the
	@# tarball as published; the repository URL Galaxy requires is a reserved .invalid placeholder
	@# here (the real one is given to make collection).
	$(BIN)/python tools/build_collection.py --repository https://git.example.invalid/wazuh-virustotal-ip \
	    --out build/lint --import-check --sanity

collection: $(STAMP) ## the tarball to publish, into build/: make collection REPOSITORY=<url> [DOCUMENTATION= ISSUES= HOMEPAGE=]
	$(BIN)/python tools/build_collection.py --repository "$(REPOSITORY)" \
	    $(if $(DOCUMENTATION),--documentation "$(DOCUMENTATION)") $(if $(ISSUES),--issues "$(ISSUES)") \
	    $(if $(HOMEPAGE),--homepage "$(HOMEPAGE)")

# The images as targets: the current version is verified while an older one builds (build.sh
# holds its one-build-at-a-time lock for the build only). A build needs no venv; the
# verification runs pytest.
WAZUH_NEWEST := $(firstword $(WAZUH_VERSIONS))
OLDER_IMAGES := $(addprefix image-,$(wordlist 2,99,$(WAZUH_VERSIONS)))
HAVE_DOCKER = $(shell docker info >/dev/null 2>&1 && echo yes)

images: $(STAMP) ## build and verify the images of every Wazuh version in sources.lock (cached ones are checked, not rebuilt)
	@if [ -n "$(HAVE_DOCKER)" ]; then $(MAKE) --no-print-directory --jobs=2 image-verify $(OLDER_IMAGES); \
	else echo "make images: no Docker engine answers; the tests that need one fail under CI=true, else skip saying so"; fi

image-%:
	tests/images/wazuh-src/build.sh --no-verify $*

image-verify: $(STAMP) image-$(WAZUH_NEWEST)
	tests/images/wazuh-src/build.sh --verify-only $(WAZUH_NEWEST)

$(OLDER_IMAGES): image-$(WAZUH_NEWEST)

define run-pytest
tests/script-pythons/make-venvs.sh
tests/ansible-cores/make-venvs.sh
$(BIN)/python -m pytest
endef

pytest: $(STAMP) images ## pytest: the integration (under every Python found), the role, molecule, on Wazuh's own daemons
	$(run-pytest)

# On a fresh machine: the venv, lint and the current version's images side by side (they wait
# on different things: the network and one core, the compiler on two; each one's output is
# printed whole when it ends), then its verification beside the older version's build, then
# pytest. (Built by the test that needs it instead, the older image cost pytest a minute: the
# suite is CPU-bound on 2 cores.)
test: ## every test: lint beside the image builds, then pytest
	$(MAKE) --no-print-directory --jobs=3 --output-sync=target lint $(if $(HAVE_DOCKER),image-verify $(OLDER_IMAGES))
	$(run-pytest)

settings: $(STAMP) ## write the role's defaults, specs, ranges and the docs' tables from files/virustotal_ip/settings.py
	$(BIN)/python tools/generate_settings.py

bench: $(STAMP) ## benchmarks: cache-hit cost, request storm, time bound (prints ratios)
	$(BIN)/python bench/run.py

demo: $(STAMP) ## the whole product: a manager container, site.yml, alerts in, verdicts out
	$(BIN)/python demo/demo.py

demo-clean: ## remove what make demo made
	$(BIN)/python demo/demo.py clean

wazuh-image: $(STAMP) ## build localhost/wazuh-manager-src:$(WAZUH_VERSION) from Wazuh's source (a version pinned in sources.lock), then verify it
	tests/images/wazuh-src/build.sh $(WAZUH_VERSION)

cluster-image: $(STAMP) ## build localhost/wazuh-manager-src:$(WAZUH_VERSION)-cluster: the manager plus wazuh-clusterd (its Python libraries from PyPI, hash-pinned)
	tests/images/wazuh-src/build.sh --cluster $(WAZUH_VERSION)

molecule: $(STAMP) ## molecule test --all against WAZUH_MANAGER_IMAGE (default: the official image)
	PATH="$(CURDIR)/$(BIN):$$PATH" MOLECULE_RUN_ID=$$(date +%s%N) $(BIN)/molecule test --all

clean: ## remove the venvs and caches
	rm -rf $(VENV) .venv-script-* .venv-core-* .pytest_cache .ruff_cache build
