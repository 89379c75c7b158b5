# gpubox — one entry point for setting up, checking and testing.
#   make rehearse       the whole of gpubox on this machine at no cost (local EC2 API + a container box)
#   make rehearse-down  tear the rehearsal down
#   make setup   venv in .venv/ (Python >= 3.12) with the locked tree (requirements.lock); checks the collections
#   make lock    recompile requirements.lock from requirements*.txt (after changing a pin)
#   make fresh   remove what the proving ground made on this machine (containers, networks, images, venv)
#   make lint    static checks only (yamllint, ansible-lint production, ruff, playbook syntax, changelog fragments,
#                ansible-test sanity on the built collection)
#   make ee      the execution environment's build context (.cache/ee/context) from execution-environment.yml
#   make test    everything: system packages, test images, lint, pytest, molecule scenarios

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
# Same ansible.cfg for every run, wherever it starts from.
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

PLAYBOOKS := $(wildcard site.yml playbooks/*.yml tests/playbooks/*.yml)
SCENARIOS := $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml)))

.PHONY: setup lock fresh system images rehearse rehearse-down lint syntax docs unit integration molecule test clean ee

setup: $(VENV)/.installed

# The whole dependency tree, each file checked against the lock's hashes (pip's hash-checking mode).
$(VENV)/.installed: requirements.lock requirements.yml
	@python=$$(scripts/find-python) && echo "controller python: $$python" && "$$python" -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python scripts/check-collections.py requirements.yml
	@touch $@

lock:
	scripts/lock

fresh:
	tests/ground/fresh.sh

system:
	tests/ground/install-system-packages.sh

images: system
	tests/images/build.sh debian12
	tests/images/build.sh debian13

rehearse: setup system images
	python -m tests.ground.rehearsal up

rehearse-down: setup
	python -m tests.ground.rehearsal down

# The collection's tarball (under a name without its version, as execution-environment.yml takes it), then the
# build context ansible-builder writes from the definition; building the image needs a registry (docs/awx.md).
ee: setup
	rm -rf .cache/ee && mkdir -p .cache/ee/collection
	ansible-galaxy collection build --output-path .cache/ee/collection >/dev/null
	mv .cache/ee/collection/gpubox-gpubox-*.tar.gz .cache/ee/collection/gpubox-gpubox.tar.gz
	ansible-builder create --file execution-environment.yml --context .cache/ee/context

lint: setup syntax
	yamllint --strict .
	ansible-lint --profile production --offline
	ruff check .
	ruff format --check .
	antsibull-changelog lint
	scripts/sanity

syntax: setup
	@for p in $(PLAYBOOKS); do ansible-playbook -i localhost, --syntax-check "$$p" >/dev/null || exit 1; echo "syntax ok  $$p"; done

# The roles' README variables tables, from their meta/argument_specs.yml (tests/unit/test_role_specs.py checks them).
docs: setup
	python scripts/role-docs.py

unit: setup
	pytest tests/unit

integration: setup system images
	pytest tests/integration

# Each scenario's wall time is printed, so a CI log shows where the time goes (docs/testing.md, Timings).
molecule: setup system images
	@for s in $(SCENARIOS); do echo "== molecule test -s $$s"; start=$$(date +%s); \
	  python -m tests.ground.molecule_run "$$s" test; echo "== molecule $$s: $$(( $$(date +%s) - start )) s"; done

test: setup system images lint
	pytest tests --durations=25
	$(MAKE) --no-print-directory molecule

clean:
	rm -rf .cache .pytest_cache .ruff_cache
