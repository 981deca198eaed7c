# The two commands a newcomer needs: `make run` and `make test`. Both create the virtual
# environment and install the project from its pins (constraints.txt) on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The Delta-Spark jars, fetched once with PySpark's Ivy (crypto_assets/analytics/delta_jars.py).
DELTA_JARS := $(VENV)/delta-jars/jars.txt
# The local Spark JVM's class archive, dumped once from a small run: Spark starts about 3 s
# sooner with it (crypto_assets/local/class_archive.py); sessions start without it as before.
CLASS_ARCHIVE := $(VENV)/spark-class-archive/.built
# The emulated Databricks Runtime the Databricks emulator's tasks run in: Python 3.12 with what DBR
# 17.3 LTS preinstalls (crypto_assets_tests/databricks/emulated_runtime.py); built for the tests
# only (`make run` and `make ui` do without it). Its stamp is written last, and again when that
# module changes and the runtime is found up to date.
EMULATED_RUNTIME := $(VENV)/emulated-runtime/dbr-17.3/.built
# Headless runs and `make ui` share one Dagster instance, so the UI shows `make run`'s runs.
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install test-install run ui test test-slow test-faults lint format clean screenshots

install: $(STAMP) $(DELTA_JARS) $(CLASS_ARCHIVE)

test-install: install $(EMULATED_RUNTIME)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (found " + sys.version.split()[0] + ")")'
	$(PYTHON) -m venv $(VENV)
	@echo "installing the pinned dependencies into $(VENV) (log: $(VENV)/install.log)"
	@( $(BIN)/python -m pip install --upgrade pip \
	  && $(BIN)/python -m pip install -c constraints.txt -e '.[dev]' ) > $(VENV)/install.log 2>&1 \
	  || { tail -n 30 $(VENV)/install.log; echo "install failed: see $(VENV)/install.log"; exit 1; }
	@touch $(STAMP)

$(DELTA_JARS): | $(STAMP)
	@echo "fetching the Delta-Spark jars into $(VENV)/delta-jars (log: $(VENV)/install.log)"
	@$(BIN)/python -m crypto_assets.analytics.delta_jars >> $(VENV)/install.log 2>&1 \
	  || { tail -n 5 $(VENV)/install.log; echo "install failed: see $(VENV)/install.log"; exit 1; }

$(CLASS_ARCHIVE): $(STAMP)
	@echo "dumping the Spark JVM's class archive into $(VENV)/spark-class-archive (log: $(VENV)/install.log)"
	@$(BIN)/python -m crypto_assets.local.class_archive >> $(VENV)/install.log 2>&1 \
	  && touch $(CLASS_ARCHIVE) \
	  || { tail -n 3 $(VENV)/install.log; echo "warning: no class archive, Spark starts without it"; }

$(EMULATED_RUNTIME): crypto_assets_tests/databricks/emulated_runtime.py | $(STAMP)
	@echo "building the emulated Databricks runtime into $(VENV)/emulated-runtime (log: $(VENV)/install.log)"
	@$(BIN)/python -m crypto_assets_tests.databricks.emulated_runtime >> $(VENV)/install.log 2>&1 \
	  || { tail -n 5 $(VENV)/install.log; echo "install failed: see $(VENV)/install.log"; exit 1; }

run: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/crypto-assets run

# `dg dev` through crypto_assets/orchestration/dg_dev.py, which restores SIGINT's default first:
# started in the background (`make ui &`: SIGINT ignored, inherited) Dagster's dev command ignored
# SIGINT and SIGTERM. `exec`: make passes its SIGTERM to its child, which must be `dg dev`.
ui: install $(DAGSTER_HOME)/dagster.yaml
	exec $(BIN)/python -m crypto_assets.orchestration.dg_dev -h 127.0.0.1 -p $${DAGSTER_PORT:-3000}

# A local instance for the demo, rendered by crypto_assets/orchestration/instance_config.py (the
# end-to-end tests use the same): no telemetry (this machine may have no network at all), no
# "join the community" dialog over the UI's first page (nux), and one producer run and one
# analytics run at a time (a second one waits QUEUED). Re-rendered when that module changes; a
# dagster.yaml of your own is left alone, with a warning naming what to add.
$(DAGSTER_HOME)/dagster.yaml: crypto_assets/orchestration/instance_config.py | $(STAMP)
	@$(BIN)/python -c 'import sys; from crypto_assets.orchestration.instance_config import write_instance_yaml; write_instance_yaml(sys.argv[1])' $@

screenshots: install
	$(BIN)/python docs/take_screenshots.py

# `make test`: everything but the slow and fault groups, over TEST_WORKERS pytest-xdist workers,
# a test module to a worker (--dist loadfile: a module's fixtures, such as the end-to-end
# modules' Dagster webserver and daemon, start once; each worker has its own Spark session).
# `make test-slow`: the slow group alone, over SLOW_WORKERS workers the same way (the
# million-trade backlog, the Databricks deployment end to end on both compute kinds, Delta-Spark's
# replays and maintenance, the longer runs under a Dagster daemon). `make test-faults`: the fault
# suite's short version (the whole pipeline under Dagster, every fault in one session);
# FAULTS_MARKERS=faults adds the long version. CI runs all three; the times on 2 cores are in the
# README. Each prints its slowest 15 tests and its wall time. TEST_WORKERS=0 runs `make test` in
# one process.
PYTEST_MARKERS ?= not slow and not faults
FAULTS_MARKERS ?= faults and not long
TEST_WORKERS ?= 3
# The slow tests mostly wait on processes they start (Dagster daemons, emulated Databricks tasks,
# Spark Connect servers): two at a time on 2 cores.
SLOW_WORKERS ?= 2

test: test-install lint
	$(BIN)/python -m pytest -m "$(PYTEST_MARKERS)" -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-slow: test-install
	$(BIN)/python -m pytest -m "slow and not faults" -n $(SLOW_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-faults: test-install
	$(BIN)/python -m pytest -m "$(FAULTS_MARKERS)" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
