# make run  - start `fota serve` on this repository's own example desired state
# make test - lint, type-check and run the whole test suite
# Both create .venv on first use and reuse it afterwards.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
# pytest-xdist workers for `make test`: the suite mostly waits (child processes, timers,
# loopback round trips), so two take ~3.7 min instead of ~7 on an idle 2-core machine.
# The default is 0 (one process), what CI runs: the tests' timing bounds (event-loop
# stalls, answer latency, loopback round trips) are set for one suite at a time. The
# 1.6 s event-loop stall seen on two workers was one garbage-collector pass over the
# FastAPI apps earlier tests had left alive (fixed: tests/builders/heap.py); of three
# two-worker runs after that at load 2.7-4.2, one failed on another bound (a loopback
# RTO of 47 ms against 20 ms in test_adaptive_retransmission). `auto`: two when the
# 1-minute load average is below 2, else one process; TEST_WORKERS=N: N workers.
TEST_WORKERS ?= 0
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test demo lint bench coap-tools lfs-tools browser-tools build-tools postgresql clean

$(STAMP): pyproject.toml | build-tools
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "setting up $(VENV) (first run only)..."
	@$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]' >$(VENV)/pip.log 2>&1 \
	  || { cat $(VENV)/pip.log; exit 1; }
	@touch $(STAMP)

# DTLSSocket (tinydtls, the CoAPs listener) builds from source: a C compiler and autotools.
build-tools:
	@{ command -v cc && command -v autoreconf && command -v libtoolize; } >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      build-essential autoconf automake libtool) >/dev/null; \
	  else echo "note: install build-essential autoconf automake libtool (DTLSSocket builds from source)"; fi; }

# libcoap's command-line peers are an independent CoAP implementation for interop tests.
coap-tools:
	@command -v coap-client-notls >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libcoap3-bin) >/dev/null; \
	  else echo "note: install libcoap3-bin for the interop tests (sudo apt-get install libcoap3-bin)"; fi; }

# Debian's git-lfs, for the tests of images kept in Git LFS (skipped without it).
lfs-tools:
	@command -v git-lfs >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq git-lfs) >/dev/null; \
	  else echo "note: install git-lfs for the Git LFS tests (sudo apt-get install git-lfs)"; fi; }

# Debian's chromium for the dashboard's browser tests: Playwright drives it (its own browser
# download cannot run here). Skipped without it, required by .ci/run.
browser-tools:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null; \
	  else echo "note: install chromium for the dashboard's browser tests (sudo apt-get install chromium)"; fi; }

# Debian's PostgreSQL server binaries (initdb, pg_ctl): the PostgreSQL store's tests start
# a throwaway cluster of their own with them. Skipped without them, required by .ci/run.
postgresql:
	@{ command -v pg_ctl || ls /usr/lib/postgresql/*/bin/pg_ctl; } >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null; \
	  else echo "note: install postgresql for the PostgreSQL store's tests (sudo apt-get install postgresql)"; fi; }

run: $(STAMP)
	$(BIN)/fota serve --repo . --state .fota/state.db

demo: $(STAMP)
	$(BIN)/python -m reconciler.demo

lint: $(STAMP)
	$(BIN)/ruff check reconciler tests bench
	$(BIN)/mypy --strict reconciler
	$(BIN)/mypy --strict bench  # its scripts import each other by bare name, as when run
	$(BIN)/lint-imports --no-cache --no-logo

test: $(STAMP) coap-tools lfs-tools browser-tools postgresql lint
	@workers=$(TEST_WORKERS); load=$$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 9); \
	if [ "$$workers" = auto ]; then workers=$$(echo "$$load" | awk '{print ($$1 < 2) ? 2 : 0}'); fi; \
	echo "pytest on $$workers xdist workers (0: one process; 1-minute load $$load)"; \
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $$workers

bench: $(STAMP) coap-tools
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b; done

clean:
	rm -rf $(VENV) .fota .mypy_cache .ruff_cache test-artifacts
