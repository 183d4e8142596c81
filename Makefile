# fastlane's front door. `make run` and `make test` provision whatever is missing first.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
UV := python3 -m uv
PY := .venv/bin/python

.PHONY: run status test test-unit test-faults lint clean stop provision deps bench prune run-cluster status-cluster \
	test-cluster stop-cluster

# Where `make run`'s supervisord keeps its pidfile and control socket, and its own log; whether it starts
# Kafka and Cassandra too (false: only the services, against backends already running). See deploy/supervisord.conf.
export FASTLANE_SUPERVISOR_RUN_DIR ?= $(CURDIR)/.local/run
export FASTLANE_SUPERVISOR_LOG_DIR ?= $(CURDIR)/.local/logs
export FASTLANE_SUPERVISE_BACKENDS ?= true
# Where `make run`'s services other than the API serve /metrics, /healthz and /readyz (deploy/supervisord.conf).
export FASTLANE_RECORDER_METRICS_PORT ?= 10001
export FASTLANE_SCHEDULER_METRICS_PORT ?= 10002
export FASTLANE_RUNNER_METRICS_PORT ?= 10003
export FASTLANE_NOTIFIER_METRICS_PORT ?= 10004
SUPERVISORD_CONF := deploy/supervisord.conf

deps: .venv/.synced

# The Python environment, exactly as locked.
.venv/.synced: pyproject.toml uv.lock
	@python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install -q uv
	$(UV) sync --frozen --quiet
	@touch $@

# Docker engine, test image, Chromium (the console's browser tests), Kafka and Cassandra jars: each step is a
# no-op when already done.
provision: deps
	@deploy/scripts/docker.sh
	@deploy/scripts/test-image.sh
	@deploy/scripts/browser.sh
	@deploy/scripts/kafka.sh jars
	@deploy/scripts/cassandra.sh jars
	@deploy/scripts/k8s-tools.sh

# The whole stack under supervisord, in the foreground: Kafka, Cassandra and the five services, their output
# here, each line prefixed with the program's name. A program that exits is restarted (a pause growing by 1 s
# per attempt while it keeps dying at start-up) and the exit is logged. Ctrl-C (or SIGTERM) stops all: the
# services first, then Cassandra and Kafka.
run: provision
	@mkdir -p "$(FASTLANE_SUPERVISOR_RUN_DIR)" "$(FASTLANE_SUPERVISOR_LOG_DIR)"
	exec .venv/bin/supervisord -c $(SUPERVISORD_CONF)

# The whole stack on a local cluster, in the foreground (deploy/cluster/supervisord.conf): a 3-broker KRaft Kafka
# and a 3-node Cassandra, each node on its own loopback address (deploy/scripts/cluster.sh), 2 API processes,
# 2 schedulers, recorders and notifiers, 3 runners over 2 Docker engines. API on 127.0.0.1:10000 (stop `make run`
# first). docs/scaling.md.
run-cluster: provision
	@mkdir -p "$(FASTLANE_SUPERVISOR_RUN_DIR)" "$(FASTLANE_SUPERVISOR_LOG_DIR)"
	@deploy/scripts/cluster.sh engine start
	exec .venv/bin/supervisord -c deploy/cluster/supervisord.conf

status-cluster:
	@.venv/bin/supervisorctl -c deploy/cluster/supervisord.conf status

# Kills one broker and one Cassandra node (kill -9) while jobs stream in, brings them back, and kills a scheduler
# and a recorder replica; the fault suite's checker counts lost, duplicated and wrong executions (tests/cluster,
# its own cluster on the addresses of deploy/scripts/cluster.sh; stop `make run-cluster` first). Not in `make test`.
test-cluster: provision
	.venv/bin/pytest tests/cluster -m cluster

# Stops the cluster nodes `deploy/scripts/cluster.sh start` started in the background, and its second engine.
stop-cluster:
	@deploy/scripts/cluster.sh stop
	@deploy/scripts/cluster.sh engine stop

# What `make run` is running: state, pid and uptime of every program.
status:
	@.venv/bin/supervisorctl -c $(SUPERVISORD_CONF) status

# Starts Kafka and Cassandra in the background when they do not answer yet, then runs every test.
# They keep running afterwards (a second `make test` starts faster); `make stop` stops them.
test: provision
	@deploy/scripts/kafka.sh start
	@deploy/scripts/cassandra.sh start
	.venv/bin/pytest tests

# Every fault round (tests/faults: kill -9 and pauses of each service, Kafka, Cassandra and dockerd, a zombie
# scheduler, Kafka paused under POSTs) on backends of its own (Kafka 127.0.0.2, Cassandra 127.0.0.3, the second
# Docker engine); `make test` runs only the rounds not marked faults_long. Table: .local/faults/results.md.
test-faults: provision
	.venv/bin/pytest tests/faults -m "faults_long or not faults_long"

test-unit: deps
	.venv/bin/pytest tests/unit

lint: deps
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

bench: provision
	@deploy/scripts/kafka.sh start
	@deploy/scripts/cassandra.sh start
	$(PY) bench/latency.py
	$(PY) bench/makespan.py

# Writes docs/configuration.md from the settings classes (shared/process/settings.py); a unit test fails when the
# committed page is not what this writes.
.PHONY: docs
docs: deps
	$(PY) -m shared.process.settings_doc

# Removes ended fastlane containers no execution needs from the runner's Docker host (FASTLANE_* settings).
prune: deps
	$(PY) -m services.runner.prune

# Stops the Kafka and Cassandra that `make test` started in the background.
stop:
	@deploy/scripts/kafka.sh stop
	@deploy/scripts/cassandra.sh stop

# Wipes all local data (Kafka log, Cassandra storage, logs). Jars and the venv are kept.
clean: stop
	rm -rf .local/data .local/logs .local/run

# The container images (deploy/images/build.sh: a Debian base made with debootstrap, nothing pulled; the fastlane
# image rebuilt from this checkout) and the compose stack run for real (deploy/compose.yaml under the project
# fastlane-compose-test, API on 127.0.0.1:10100): one job through it, non-root users, the Docker socket only in
# the runner; then everything is removed. A few minutes; docs/images.md.
.PHONY: test-compose
test-compose: deps
	@deploy/scripts/docker.sh
	@deploy/scripts/test-image.sh
	@deploy/scripts/kafka.sh jars
	@deploy/scripts/cassandra.sh jars
	@command -v docker-compose >/dev/null || apt-get install -y -q docker-compose >/dev/null
	.venv/bin/pytest tests/deploy -m compose
