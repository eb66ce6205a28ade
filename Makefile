# virtfleet.libvirt: developer and CI entry points (Debian 12, Python 3.11). `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
STAMP  := $(VENV)/.requirements.stamp
# The collection is the repo root; ansible and pytest find it through this symlink.
COLLECTIONS := $(CURDIR)/.build/collections
COLL_LINK   := .build/collections/ansible_collections/virtfleet/libvirt
COLL_ENV    := ANSIBLE_COLLECTIONS_PATH=$(COLLECTIONS)
LAB_ENV     := /run/virtfleet-lab.env
# libvirt-python has no wheel: it compiles against libvirt-dev via pkg-config. libvirt0 (pulled
# in by libvirt-dev) alone carries the test:/// driver, so `make demo` needs no daemon.
APT_VENV := libvirt-dev pkg-config
# The busybox guest of the detach integration tests (tests/integration/_detach_lib.py reads VIRTFLEET_GUEST_DIR).
GUEST_DIR ?= $(or $(VIRTFLEET_GUEST_DIR),/var/lib/libvirt/images/virtfleet-guest)

.PHONY: help deps venv collection demo lab units sanity lint docsite integration faults corpus corpus-ci package fleet fleet-down fleet-test molecule test clean

help:
	@echo 'make venv         apt prerequisites + .venv with requirements.txt (runtime) and requirements-dev.txt (stamp: reruns are instant)'
	@echo 'make collection   symlink $(COLL_LINK) -> repo root'
	@echo 'make demo         the audit + report roles on the bundled sample fleet (test:/// driver, no daemon): reports/compliance.{json,xml,html}'
	@echo 'make lab          install + start libvirtd/virtlogd without systemd (scripts/lab.sh; root)'
	@echo 'make guest        build the busybox guest of the detach tests in $(GUEST_DIR) (scripts/build-guest.sh)'
	@echo 'make units        ansible-test units on a fresh copy (scripts/units.sh)'
	@echo 'make sanity       ansible-test sanity --local on a fresh copy (scripts/sanity.sh)'
	@echo 'make integration  lab, then pytest tests/integration with $(LAB_ENV) exported'
	@echo 'make faults       engine and detach under faults: kills/restarts a dedicated session libvirtd (scripts/faultd.sh; root)'
	@echo 'make corpus       libvirt test-suite XML (all ~620 files of the installed release) through every policy module + normalisation study (scripts/corpus.sh)'
	@echo 'make corpus-ci    the same on a deterministic 60-file sample (~20 s)'
	@echo 'make fleet        3 independent SSH hypervisors on this machine (scripts/fleet.sh up + seed)'
	@echo 'make lint         ansible-lint (production profile) on roles, playbooks and molecule scenarios'
	@echo 'make docsite      the docsite (antsibull-docs + Sphinx, warnings are errors) into .build/docsite (scripts/docsite.sh)'
	@echo 'make molecule     molecule scenarios of the audit, remediate and detach roles against the fleet'
	@echo 'make fleet-test   roles and playbooks against that fleet: pytest tests/fleet'
	@echo 'make generations  Debian 11/12/13 hypervisors (own libvirtd, QEMU, Python) in chroots over SSH (scripts/generations.sh up; root; cold ~3 min)'
	@echo 'make fleet-versions  name, URI, libvirt, QEMU and Python of each generation host, one a line'
	@echo 'make generations-test  pytest tests/generations: smoke, differences, readiness, confusion matrix (CI sample), real 11 -> 12 rolling upgrade (~8 min)'
	@echo 'make readiness-matrix  upgrade-readiness predictions vs real starts over every runnable corpus domain of each generation'
	@echo 'make rolling-upgrade-test  rolling_upgrade.yml with a real Debian 11 -> 12 upgrade of a canary host (~2.5 min)'
	@echo 'make integration-gen / fleet-gen / faults-gen / corpus-gen  that suite on every generation host (GEN_TARGETS="$(GEN_TARGETS)")'
	@echo 'make generations-suites  all four on every generation (brings the generations up first)'
	@echo 'make test         units, sanity, lint, docsite, fleet, molecule, faults, corpus, generations-suites, generations-test, integration (all run; fails if any failed)'
	@echo 'make package      tarball into .build/dist from a clean copy + changelog/docs lint on it (PACKAGE_ARGS=--importer: galaxy-importer too)'
	@echo 'make clean        remove .venv, .build and test caches'

deps:
	@scripts/ensure-apt.sh $(APT_VENV)
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || scripts/ensure-apt.sh python3-venv

venv: $(STAMP)

# Order-only on deps: the apt check runs every time (a few ms) but does not force a reinstall.
# requirements.txt: the modules' runtime libraries; requirements-dev.txt: the toolchain.
$(STAMP): requirements.txt requirements-dev.txt | deps
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	@touch $@

collection:
	@mkdir -p $(dir $(COLL_LINK))
	@ln -sfn ../../../.. $(COLL_LINK)

# The product itself: playbooks/audit.yml (audit role, then report role) on the sample fleet, plus a
# per-domain summary; tests/unit/roles/test_demo.py runs the same command (DEMO_CMD) and checks the reports.
DEMO_CMD := $(VENV)/bin/ansible-playbook -i playbooks/inventory/sample_fleet.yml playbooks/demo.yml --check
demo: venv collection
	$(COLL_ENV) $(DEMO_CMD) $(DEMO_ARGS)

lab:
	@scripts/lab.sh

.PHONY: guest
guest:
	@scripts/build-guest.sh $(GUEST_DIR)

# As ansible-test runs them (a fresh copy of the collection, its pytest config, 2 workers); for a quick
# run of one file while developing: scripts/run-pytest.sh tests/unit/plugins/module_utils/test_engine.py
units: venv collection
	@scripts/units.sh

# shellcheck: without it ansible-test skips the shell scripts with a warning.
sanity: venv
	@scripts/ensure-apt.sh shellcheck
	@scripts/sanity.sh $(SANITY_ARGS)

integration: venv collection lab
	@scripts/ensure-apt.sh chromium chromium-driver
	@set -a; . $(LAB_ENV); set +a; scripts/run-pytest.sh tests/integration

# The fault suite owns its daemon (user vffault's session libvirtd), which it SIGKILLs and restarts.
faults: venv collection guest
	@scripts/faultd.sh up >/dev/null
	@scripts/run-pytest.sh tests/faults

# libvirt's own tests/qemuxml2xmloutdata (Debian source of the installed libvirt) on the real daemon.
# Never at the same time as `integration`, which restarts libvirtd.
corpus: venv collection lab
	@scripts/corpus.sh >/dev/null
	@VIRTFLEET_CORPUS_SAMPLE=all scripts/run-pytest.sh tests/corpus

corpus-ci: venv collection lab
	@scripts/corpus.sh >/dev/null
	@scripts/run-pytest.sh tests/corpus

fleet:
	@scripts/fleet.sh up && scripts/fleet.sh seed

lint: venv collection
	@scripts/lint.sh

# Modules, plugins, roles and the guides (docs/*.md) as one site; fails on any Sphinx warning.
docsite: venv
	@scripts/docsite.sh

# Never run alongside fleet-test: both reseed the fleet.
molecule: venv collection
	@scripts/molecule.sh

fleet-down:
	@scripts/fleet.sh down

fleet-test: venv collection
	@scripts/run-pytest.sh tests/fleet

# The mixed-generation fleet (docs/generations.md): chroots under /var/lib/virtfleet-gen, cache in /var/cache/virtfleet-gen.
.PHONY: generations generations-down fleet-versions generations-test
generations:
	@scripts/generations.sh up

generations-down:
	@scripts/generations.sh down

fleet-versions:
	@scripts/generations.sh versions

generations-test: venv collection generations
	@scripts/run-pytest.sh tests/generations

# Upgrade readiness against real starts (helper C's block; tests/generations/matrix.py, docs/generations.md):
# the confusion matrix over EVERY runnable corpus definition of each generation (the CI run,
# tests/generations/test_matrix.py, uses a bounded sample), and the rolling upgrade with a real 11 -> 12 upgrade.
.PHONY: readiness-matrix rolling-upgrade-test
readiness-matrix: venv collection generations
	@PYTHONPATH=$(CURDIR)/.build/collections ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/.build/collections .venv/bin/python tests/generations/matrix.py --full

rolling-upgrade-test: venv collection generations
	@scripts/run-pytest.sh tests/generations/test_rolling_upgrade.py

# --- every suite that talks to libvirt, on every generation (tests/_target.py, docs/generations.md) ---
# VIRTFLEET_TARGET=<codename> points one suite at that generation host (its daemon, its tree, its
# Python). GEN_TARGETS: the generations the *-gen targets run on. bookworm (libvirt 9.0, QEMU 7.2)
# is the lab itself: the same Debian 12 packages (tests/integration/test_target.py checks it),
# so by default the lab runs stand for it; `make generations-suites GEN_TARGETS="bullseye bookworm trixie"`
# runs it as a tree too. Every suite on every target runs even when one fails; one suite at a time
# (never two on one daemon). Each run prints its wall time.
GEN_TARGETS ?= bullseye trixie
GEN_SUITE_RUN = failed=; for g in $(GEN_TARGETS); do start=$$(date +%s); \
	  VIRTFLEET_TARGET=$$g $(1) || failed="$$failed $$g"; \
	  echo "[gen-suites] $(2) on $$g: $$(( $$(date +%s) - start )) s" >&2; done; \
	  if [[ -n $$failed ]]; then echo "[gen-suites] $(2) FAILED on:$$failed" >&2; exit 1; fi
.PHONY: generations-suites integration-gen fleet-gen faults-gen corpus-gen

integration-gen: venv collection generations guest
	@scripts/ensure-apt.sh chromium chromium-driver
	@$(call GEN_SUITE_RUN,scripts/run-pytest.sh tests/integration,integration)

fleet-gen: venv collection generations
	@$(call GEN_SUITE_RUN,bash -c 'scripts/fleet.sh up && scripts/run-pytest.sh tests/fleet',fleet)

faults-gen: venv collection generations guest
	@$(call GEN_SUITE_RUN,bash -c 'scripts/faultd.sh up >/dev/null && scripts/run-pytest.sh tests/faults',faults)

corpus-gen: venv collection generations
	@$(call GEN_SUITE_RUN,bash -c 'scripts/corpus.sh >/dev/null && scripts/run-pytest.sh tests/corpus',corpus)

generations-suites: venv collection generations
	@failed=; \
	for s in integration fleet faults corpus; do $(MAKE) --no-print-directory $$s-gen || failed="$$failed $$s"; done; \
	if [[ -n $$failed ]]; then echo "generations-suites: FAILED:$$failed" >&2; exit 1; fi

# Every suite runs even when an earlier one fails; integration runs last so that the last line
# printed on success is its pytest summary. The generations (cold ~3 min, warm ~1 s) come up first;
# generations-suites runs every libvirt suite on them.
test: venv collection
	@failed=; \
	$(MAKE) --no-print-directory units || failed="$$failed units"; \
	$(MAKE) --no-print-directory sanity || failed="$$failed sanity"; \
	$(MAKE) --no-print-directory lint || failed="$$failed lint"; \
	$(MAKE) --no-print-directory docsite || failed="$$failed docsite"; \
	$(MAKE) --no-print-directory fleet-test || failed="$$failed fleet"; \
	$(MAKE) --no-print-directory molecule || failed="$$failed molecule"; \
	$(MAKE) --no-print-directory faults || failed="$$failed faults"; \
	$(MAKE) --no-print-directory corpus-ci || failed="$$failed corpus"; \
	$(MAKE) --no-print-directory generations-suites || failed="$$failed generations-suites"; \
	$(MAKE) --no-print-directory generations-test || failed="$$failed generations-test"; \
	$(MAKE) --no-print-directory integration || failed="$$failed integration"; \
	if [[ -n $$failed ]]; then echo "make test: FAILED:$$failed" >&2; exit 1; fi

package: venv
	@scripts/package.sh $(PACKAGE_ARGS)

clean:
	rm -rf $(VENV) .build tests/output .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
