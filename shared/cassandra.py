"""Cassandra plumbing: connecting (with patience at start-up) and the project's idempotent schema migration."""

import logging
import time

from cassandra import InvalidRequest
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.policies import RoundRobinPolicy

from shared.net import wait_for_port
from shared.settings import Settings

log = logging.getLogger(__name__)

# Tables are shaped for the API's queries; the recorder is their owner. Every statement is idempotent.
# Table names are qualified with the keyspace ({ks}): no session-wide USE, so one session can serve any.
SCHEMA = [
    """CREATE TABLE IF NOT EXISTS {ks}.tasks (
        task_id text PRIMARY KEY,
        last_modified_at timestamp
    )""",
    # One partition per task: GET /tasks/{t} lists its jobs, GET .../jobs/{j} reads one row.
    """CREATE TABLE IF NOT EXISTS {ks}.jobs (
        task_id text,
        job_id uuid,
        created_at timestamp,
        last_modified_at timestamp,
        image text,
        command text,
        envs map<text, text>,
        metadata text,
        request_ip text,
        scheduled boolean,
        definition text,
        PRIMARY KEY ((task_id), job_id)
    )""",
    # One partition per job; execution ids are time-based UUIDs, so the clustering order is newest first.
    """CREATE TABLE IF NOT EXISTS {ks}.executions (
        task_id text,
        job_id uuid,
        execution_id timeuuid,
        status text,
        created_at timestamp,
        started_at timestamp,
        finished_at timestamp,
        image text,
        command text,
        attempt int,
        exit_code int,
        stdout text,
        stderr text,
        error text,
        request_ip text,
        container_id text,
        docker_host text,
        PRIMARY KEY ((task_id, job_id), execution_id)
    ) WITH CLUSTERING ORDER BY (execution_id DESC)""",
    # --- query tables and counters, written by the recorder only (shared/indexes.py) ---
    # The first sighting of a task/job/execution; a lightweight transaction on these gates the counters.
    "CREATE TABLE IF NOT EXISTS {ks}.task_index (task_id text PRIMARY KEY, created_at timestamp)",
    "CREATE TABLE IF NOT EXISTS {ks}.job_index (task_id text, job_id uuid, PRIMARY KEY ((task_id), job_id))",
    """CREATE TABLE IF NOT EXISTS {ks}.execution_index (
        task_id text, job_id uuid, execution_id timeuuid, PRIMARY KEY ((task_id, job_id), execution_id))""",
    # GET /tasks: every task, newest first (one partition: bucket 0), with what a listing shows of each task
    # (last_modified_at, jobs_count) copied in, so a page is one read.
    """CREATE TABLE IF NOT EXISTS {ks}.tasks_by_creation (
        bucket int, created_at timestamp, task_id text, last_modified_at timestamp, jobs_count bigint,
        PRIMARY KEY ((bucket), created_at, task_id)
    ) WITH CLUSTERING ORDER BY (created_at DESC, task_id DESC)""",
    # GET /search: one partition per word of a task id, newest first; same copied columns.
    """CREATE TABLE IF NOT EXISTS {ks}.task_words (
        word text, created_at timestamp, task_id text, last_modified_at timestamp, jobs_count bigint,
        PRIMARY KEY ((word), created_at, task_id)
    ) WITH CLUSTERING ORDER BY (created_at DESC, task_id DESC)""",
    "CREATE TABLE IF NOT EXISTS {ks}.counters (name text PRIMARY KEY, value counter)",
    # GET /status: the hosts as their runners last reported them, what runs now, what is scheduled.
    """CREATE TABLE IF NOT EXISTS {ks}.hosts (
        host text PRIMARY KEY, last_seen timestamp, capacity int, running int, circuit text, engine_ok boolean,
        error text, runner_version text)""",
    """CREATE TABLE IF NOT EXISTS {ks}.running_executions (
        bucket int, execution_id timeuuid, task_id text, job_id uuid, host text, container_id text,
        started_at timestamp, PRIMARY KEY ((bucket), execution_id))""",
    """CREATE TABLE IF NOT EXISTS {ks}.scheduled_jobs (
        bucket int, task_id text, job_id uuid, PRIMARY KEY ((bucket), task_id, job_id))""",
    "CREATE TABLE IF NOT EXISTS {ks}.task_counters (task_id text PRIMARY KEY, jobs counter)",
    # Hosts taken out of rotation (POST /docker-executor/blacklist); written by the API and the recorder.
    "CREATE TABLE IF NOT EXISTS {ks}.blacklist (host text PRIMARY KEY, since timestamp)",
    # --- the runners' ledger (services/runner/ledger.py) ---
    # Which host runs an execution: claimed with a lightweight transaction, so a redelivered ExecutionDue
    # never starts a second container on another host. Kept 30 days (longer than any redelivery).
    """CREATE TABLE IF NOT EXISTS {ks}.execution_claims (execution_id timeuuid PRIMARY KEY, host text)
    WITH default_time_to_live = 2592000""",
    # What each host holds and has not finished yet, with the ExecutionDue itself: what a restarted runner
    # takes up again, and what is failed when its host is lost.
    """CREATE TABLE IF NOT EXISTS {ks}.host_executions (
        host text, execution_id timeuuid, due text, PRIMARY KEY ((host), execution_id))""",
    # Each runner's own liveness token, rewritten every heartbeat interval straight from the runner (not through
    # Kafka and the recorder): a peer is judged lost only when its token stopped changing while the judge itself
    # kept reaching Cassandra (services/runner/liveness.py), whatever the clocks of either machine say.
    "CREATE TABLE IF NOT EXISTS {ks}.host_beats (host text PRIMARY KEY, beat timeuuid)",
    """CREATE TABLE IF NOT EXISTS {ks}.job_counters (
        task_id text, job_id uuid, executions counter, PRIMARY KEY ((task_id, job_id)))""",
    # Stop requests (StopExecution), kept a week: a runner that was down when one was broadcast finds it here.
    """CREATE TABLE IF NOT EXISTS {ks}.stop_requests (execution_id timeuuid PRIMARY KEY, requested_at timestamp)
    WITH default_time_to_live = 604800""",
    # --- the notifier's deliveries (services/notifier/) ---
    # Deliveries not finished yet, by the partition of the execution event that caused them: the notifier
    # holding that partition of `executions` owns them, and takes them up after a restart or a rebalance.
    """CREATE TABLE IF NOT EXISTS {ks}.pending_deliveries (
        partition int, delivery_id uuid, delivery text, PRIMARY KEY ((partition), delivery_id))""",
    # Every delivery of an execution, its attempts and outcome: shown on the execution in the API.
    """CREATE TABLE IF NOT EXISTS {ks}.deliveries (
        task_id text, job_id uuid, execution_id timeuuid, delivery_id uuid, channel text, event text,
        target text, state text, attempts int, status_code int, last_error text, updated_at timestamp,
        PRIMARY KEY ((task_id, job_id, execution_id), delivery_id))""",
    # --- the API's Idempotency-Key (services/api/idempotency.py) ---
    # The order a key was first used for in a task (claimed with a lightweight transaction before it is
    # published), what its request looked like, and how its publishing went; kept a day.
    """CREATE TABLE IF NOT EXISTS {ks}.idempotency_keys (
        task_id text, key text, fingerprint text, command blob, state text, created_at timestamp,
        PRIMARY KEY ((task_id, key))) WITH default_time_to_live = 86400""",
    # --- the notifier's events waiting for their job's row (services/notifier/waiting.py) ---
    # An execution event whose job definition is not in `jobs` yet (the API's early write failed and the
    # recorder lags): kept by the partition of the event, looked at again until the row comes or patience ends.
    """CREATE TABLE IF NOT EXISTS {ks}.notify_waiting (
        partition int, event_id uuid, event text, origin_offset bigint, first_seen timestamp,
        PRIMARY KEY ((partition), event_id))""",
]


# Columns added after a table was first released: added to existing tables at start-up.
ADDED_COLUMNS = [
    ("jobs", "definition", "text"),
    ("tasks_by_creation", "last_modified_at", "timestamp"),
    ("tasks_by_creation", "jobs_count", "bigint"),
    ("task_words", "last_modified_at", "timestamp"),
    ("task_words", "jobs_count", "bigint"),
    ("hosts", "farm", "text"),
    # The ExecutionFinished a runner reported with no container left to read it from again (services/runner).
    ("execution_claims", "report", "text"),
]


def _add_column(session: Session, table: str, column: str, kind: str) -> None:
    try:
        session.execute(f"ALTER TABLE {table} ADD {column} {kind}", timeout=60)
    except InvalidRequest as exc:
        if "conflicts with an existing column" not in str(exc) and "already exist" not in str(exc):
            raise


def connect(settings: Settings) -> tuple[Cluster, Session]:
    """Connect, retrying until the node answers or the start-up timeout passes."""
    wait_for_port(
        settings.cassandra_contact_points[0], settings.cassandra_port, settings.startup_timeout_s, "Cassandra"
    )
    deadline = time.monotonic() + settings.startup_timeout_s
    while True:
        cluster = Cluster(
            settings.cassandra_contact_points,
            port=settings.cassandra_port,
            connect_timeout=5,
            execution_profiles={
                EXEC_PROFILE_DEFAULT: ExecutionProfile(load_balancing_policy=RoundRobinPolicy(), request_timeout=10)
            },
            protocol_version=5,
        )
        try:
            return cluster, cluster.connect()
        except NoHostAvailable:
            cluster.shutdown()
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def migrate(settings: Settings) -> None:
    """Create the keyspace and tables when missing (safe to run again, and from several processes)."""
    cluster, session = connect(settings)
    try:
        session.execute(
            f"CREATE KEYSPACE IF NOT EXISTS {settings.keyspace} WITH replication = "
            f"{{'class': 'SimpleStrategy', 'replication_factor': {settings.cassandra_replication_factor}}}"
        )
        for statement in SCHEMA:
            session.execute(statement.format(ks=settings.keyspace), timeout=60)
        for table, column, kind in ADDED_COLUMNS:
            _add_column(session, f"{settings.keyspace}.{table}", column, kind)
        _set_retention(session, settings.keyspace, settings.execution_retention_days)
        log.info("schema ready", extra={"keyspace": settings.keyspace})
    finally:
        cluster.shutdown()


def _set_retention(session: Session, keyspace: str, days: int) -> None:
    """Executions (with their logs) and their deliveries expire `days` after they were last written; 0 keeps
    them forever."""
    ttl = days * 86_400
    for table in ("executions", "deliveries"):
        row = session.execute(
            "SELECT default_time_to_live FROM system_schema.tables WHERE keyspace_name = %s AND table_name = %s",
            (keyspace, table),
        ).one()
        if row is not None and row.default_time_to_live != ttl:
            session.execute(f"ALTER TABLE {keyspace}.{table} WITH default_time_to_live = {ttl}", timeout=60)
