"""The read model's tables: shaped for the API's queries, written by the recorder (their owner; the API also
writes the early projection of its own orders, services/recorder/projections.py) and read by the API and the
notifier. Every statement is idempotent; names are qualified with the keyspace ({ks}), no session-wide USE."""

from shared.infra.cassandra import Schema

SCHEMA = Schema(
    tables=(
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
        # --- query tables and counters, written by the recorder only (services/recorder/indexes.py) ---
        # The first sighting of a task/job/execution; a lightweight transaction on these gates the counters.
        "CREATE TABLE IF NOT EXISTS {ks}.task_index (task_id text PRIMARY KEY, created_at timestamp)",
        "CREATE TABLE IF NOT EXISTS {ks}.job_index (task_id text, job_id uuid, PRIMARY KEY ((task_id), job_id))",
        """CREATE TABLE IF NOT EXISTS {ks}.execution_index (
        task_id text, job_id uuid, execution_id timeuuid, PRIMARY KEY ((task_id, job_id), execution_id))""",
        # GET /tasks: every task, newest first, one partition per hour of creation (services/recorder/buckets.py;
        # bucket 0 holds the tasks listed before issue 19), with what a listing shows of each task
        # (last_modified_at, jobs_count) copied in, so a page is one read per hour it spans.
        """CREATE TABLE IF NOT EXISTS {ks}.tasks_by_creation (
        bucket int, created_at timestamp, task_id text, last_modified_at timestamp, jobs_count bigint,
        PRIMARY KEY ((bucket), created_at, task_id)
    ) WITH CLUSTERING ORDER BY (created_at DESC, task_id DESC)""",
        # The non-empty hour buckets of the listing ('all') and how many tasks each holds, newest first: a page
        # walks them and skips whole hours by their counts. One row per hour, not per task.
        """CREATE TABLE IF NOT EXISTS {ks}.task_buckets (
        listing text, bucket int, tasks counter, PRIMARY KEY ((listing), bucket)
    ) WITH CLUSTERING ORDER BY (bucket DESC)""",
        # A job's executions numbered 1, 2, 3... in the order the recorder first saw them (services/recorder/
        # numbers.py): page N of a job is a range of numbers, not N pages of rows.
        """CREATE TABLE IF NOT EXISTS {ks}.execution_numbers (
        task_id text, job_id uuid, number int, execution_id timeuuid,
        PRIMARY KEY ((task_id, job_id), number)
    ) WITH CLUSTERING ORDER BY (number DESC)""",
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
        """CREATE TABLE IF NOT EXISTS {ks}.job_counters (
        task_id text, job_id uuid, executions counter, PRIMARY KEY ((task_id, job_id)))""",
        # Live output (ExecutionOutput chunks) by execution, in the order written: a follower's backlog. `at` is the
        # chunk's offset, so a chunk published twice (a runner restarted) is one row.
        """CREATE TABLE IF NOT EXISTS {ks}.execution_output (
        execution_id uuid, at bigint, stream text, chunk text, size int, skipped bigint,
        PRIMARY KEY ((execution_id), at))""",
        # Stop requests (StopExecution), kept a week: a runner that was down when one was broadcast finds it here.
        """CREATE TABLE IF NOT EXISTS {ks}.stop_requests (execution_id timeuuid PRIMARY KEY, requested_at timestamp)
    WITH default_time_to_live = 604800""",
    ),
    # Columns added after a table was first released: added to existing tables at start-up.
    added_columns=(
        ("jobs", "definition", "text"),
        ("tasks_by_creation", "last_modified_at", "timestamp"),
        ("tasks_by_creation", "jobs_count", "bigint"),
        ("task_words", "last_modified_at", "timestamp"),
        ("task_words", "jobs_count", "bigint"),
        ("hosts", "farm", "text"),
        ("executions", "output_bytes", "bigint"),
        # The hour bucket a task is listed in (none: the legacy bucket 0), written by its gate only.
        ("task_index", "bucket", "int"),
        # An execution gated by a recorder that numbers executions (written by the gate only), and its number
        # once claimed: a gate row with `numbering` and no number is a claim cut short (recorder/numbers.py).
        ("execution_index", "numbering", "boolean"),
        ("execution_index", "number", "int"),
    ),
    # executions with their logs and their live output; their numbers go with them
    retained=("executions", "execution_output", "execution_numbers"),
)
