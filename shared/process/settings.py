"""Configuration: one pydantic-settings class per service, all read from FASTLANE_* environment variables.

The docstring under each field is its description: `make docs` (`python -m shared.process.settings_doc`) writes
them into docs/configuration.md, and a unit test fails when that page and these classes disagree.
"""

from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.contract.events import RetryBackoff
from shared.domain.farms import Farm, name_farms


class Settings(BaseSettings):
    """What every service needs: where Kafka and Cassandra are, names, logging."""

    model_config = SettingsConfigDict(env_prefix="FASTLANE_", extra="ignore", use_attribute_docstrings=True)

    kafka_bootstrap: str = "127.0.0.1:9092"
    """Kafka bootstrap servers (`host:port`)."""
    topic_prefix: str = "fastlane."
    """Prefix of every topic and consumer group: lets tests and several stacks share one broker."""
    topic_partitions: int = Field(default=6, ge=1)
    """Partitions of each topic fastlane creates."""
    kafka_replication_factor: int = Field(default=1, ge=1)
    """Replicas of each topic fastlane creates (3 on a cluster of three brokers: `make run-cluster`)."""
    kafka_min_insync_replicas: int = Field(default=1, ge=1)
    """Each topic's `min.insync.replicas`: with `acks=all`, a write is acknowledged once this many replicas have it
    (2 of 3 on a cluster: one broker may be down without refusing writes or losing acknowledged ones)."""
    cassandra_hosts: str = "127.0.0.1"
    """Cassandra contact points, comma-separated."""
    cassandra_port: int = 9042
    """Cassandra's CQL port."""
    keyspace: str = Field(default="fastlane", pattern=r"^[a-z][a-z0-9_]{0,47}$")
    """Cassandra keyspace of every table (created at start-up when missing)."""
    cassandra_replication_factor: int = Field(default=1, ge=1)
    """Replication factor of the keyspace, when a service creates it."""
    cassandra_consistency: Literal["ONE", "LOCAL_ONE", "QUORUM", "LOCAL_QUORUM", "EACH_QUORUM", "ALL"] = "LOCAL_QUORUM"
    """Consistency of every read and write but the few that tolerate stale data (docs/scaling.md lists each): with
    quorum writes and quorum reads, a read sees every acknowledged write (a GET right after a POST), and one of three
    replicas may be down. On one node it is the same as ONE."""
    cassandra_serial_consistency: Literal["SERIAL", "LOCAL_SERIAL"] = "LOCAL_SERIAL"
    """Consistency of the Paxos phase of lightweight transactions (claims, first sightings, idempotency keys) and of
    the reads that must see their outcome."""
    max_message_bytes: int = Field(default=2 * 1024 * 1024, ge=256 * 1024, le=64 * 1024 * 1024)
    """Largest message any producer sends and any topic takes (each producer's `message.max.bytes` and each topic's
    `max.message.bytes`; a Cassandra mutation, half a commit-log segment, must hold one): job definitions are
    bounded at the API to half of it and logs are clipped to fit, so every message fits by construction."""
    output_retention_hours: int = Field(default=24, ge=1, le=24 * 365)
    """How long the `output` topic keeps live output (ExecutionOutput chunks); followers read older output from the
    recorder's `execution_output` table, kept as long as the executions."""
    startup_timeout_s: float = 180.0
    """How long a service waits at start-up for Kafka and Cassandra to answer before giving up."""
    timeout_hard_limit_s: float = Field(default=1800.0, gt=0)
    """No execution runs longer than this, whatever its own `timeout` says (the API caps, the runner enforces); it also
    bounds jobs without a timeout."""
    metrics_host: str = "127.0.0.1"
    """Address of the `/metrics`, `/healthz` and `/readyz` server of the scheduler, runner, recorder and notifier
    (the API serves them on its own port); `0.0.0.0` in a container."""
    metrics_port: int = Field(default=0, ge=0, le=65535)
    """Port of that server; 0 = none. `make run` gives each service its own (docs/metrics.md)."""
    log_level: str = "INFO"
    """Level of the services' logs (`DEBUG`, `INFO`, `WARNING`...)."""
    log_format: Literal["text", "json"] = "text"
    """`text` (readable, for development) or `json` (one object a line)."""
    execution_retention_days: int = Field(default=0, ge=0)
    """How long finished executions (their rows, with their logs) are kept: the TTL of execution rows; 0 = forever."""
    env_blacklist: list[str] = ["password", "key", "secret", "client_id"]
    """Env values whose NAME contains one of these words (case-insensitive) are shown as `***` (API, notifications);
    services never log envs."""
    webhooks_refuse_private: bool = False
    """Refuse webhooks to loopback, private, link-local and other non-public addresses: the API refuses literal
    addresses and `localhost` (400), the notifier refuses, without retrying, hosts that resolve to one."""
    public_url: str = "http://127.0.0.1:10000"
    """Where clients reach the API: the base of the links in webhooks and e-mails."""
    farms: list[Farm] = [Farm(name="default", match="", hosts=["local"], maxRunning=4)]
    """Docker farms (JSON list of `{name, match, hosts, maxRunning}`): the first whose `match` regex matches a task id
    runs that task's jobs; see [Runners and farms](farms.md)."""

    @field_validator("farms")
    @classmethod
    def _named(cls, farms: list[Farm]) -> list[Farm]:
        return name_farms(farms)

    @model_validator(mode="after")
    def _insync_within_replicas(self) -> "Settings":
        if self.kafka_min_insync_replicas > self.kafka_replication_factor:
            raise ValueError("kafka_min_insync_replicas cannot exceed kafka_replication_factor")
        return self

    @property
    def cassandra_contact_points(self) -> list[str]:
        return [h.strip() for h in self.cassandra_hosts.split(",") if h.strip()]


class ApiSettings(Settings):
    """The HTTP API."""

    api_host: str = "127.0.0.1"
    """Address the API listens on."""
    api_port: int = 10000
    """Port the API listens on."""
    api_processes: int = Field(default=1, ge=1, le=64)
    """Processes serving the API on that port (uvicorn workers, each with its own connections); `make run` starts
    2. More than one needs Linux (a worker ends with its supervisor)."""
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    """Request bodies larger than this answer 413."""
    page_size: int = Field(default=10, ge=1, le=1000)
    """Tasks per page of `GET /tasks` and `/search`."""
    executions_page_size: int = Field(default=100, ge=1, le=10_000)
    """Executions shown per page of a job."""
    cors_origins: list[str] = ["*"]
    """Origins allowed by CORS (JSON list)."""
    basic_auth_username: str = ""
    """HTTP basic auth: on when both username and password are set."""
    basic_auth_password: str = ""
    """HTTP basic auth password (see the username)."""
    basic_auth_realm: str = "fastlane"
    """Realm of the HTTP basic auth challenge."""
    bearer_tokens: list[str] = []
    """Bearer tokens accepted in `Authorization: Bearer <token>` (any of them; JSON list, compared in constant time);
    empty = none."""
    healthcheck_timeout_s: float = Field(default=3.0, gt=0, le=10)
    """`GET /healthcheck` answers 500 naming Kafka or Cassandra when it did not answer within this."""
    host_stale_after_s: float = Field(default=15.0, gt=0)
    """A host whose runner has not reported for this long is shown unavailable in `/status`."""


class SchedulerSettings(Settings):
    """The scheduler: retry defaults and instance identity."""

    scheduler_instance: str = ""
    """Transactional identity; empty = a random one per process (set a stable one per replica to make a restarted
    replica fence its predecessor at once instead of after the 10 s transaction timeout)."""
    retry_backoff_min_ms: int = Field(default=1000, ge=1)
    """Pause before a job's first retry, when its `retryBackoff` sets none."""
    retry_backoff_factor: float = Field(default=2.0, ge=1.0)
    """Growth of the pause between retries, when a job's `retryBackoff` sets none."""
    retry_backoff_max_ms: int = Field(default=300_000, ge=1)
    """Longest pause between retries, when a job's `retryBackoff` sets none."""
    missed_fire_grace_s: float = Field(default=30.0, gt=0)
    """A cron fire later than this was missed (everything was down): `catchUp` decides whether it still runs."""


class NotifierSettings(Settings):
    """The notifier: webhook signing and retries, SMTP."""

    webhook_secret: str = ""
    """HMAC-SHA256 key of the `X-Fastlane-Signature` header; empty = deliveries go unsigned (a warning at start)."""
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=120)
    """A webhook attempt with no answer within this has failed."""
    webhook_default_retries: int = Field(default=3, ge=0, le=20)
    """Retries of a webhook that says nothing about them."""
    mail_retries: int = Field(default=3, ge=0, le=20)
    """Retries of every e-mail."""
    notify_backoff_min_ms: int = Field(default=1000, ge=1)
    """Pause before retry n of a delivery: min(max, min * factor ** (n - 1))."""
    notify_backoff_factor: float = Field(default=2.0, ge=1.0)
    """Factor of the delivery retry pause."""
    notify_backoff_max_ms: int = Field(default=300_000, ge=1)
    """Longest delivery retry pause."""
    notify_job_wait_s: float = Field(default=3600.0, gt=0)
    """An execution event whose job row is not written yet (the API's early write failed, the recorder lags) waits this
    long for it; then it is parked on the dead-letter topic with the reason."""
    notify_job_recheck_s: float = Field(default=1.0, gt=0)
    """How often an event waiting for its job row looks for it again."""
    notify_workers: int = Field(default=16, ge=1, le=256)
    """Deliveries in flight at once: a slow receiver holds one of these, never the queue."""
    smtp_host: str = ""
    """SMTP server; empty = e-mail off (such deliveries fail with that reason)."""
    smtp_port: int = 25
    """SMTP port."""
    smtp_security: Literal["none", "starttls", "tls"] = "none"
    """SMTP transport security."""
    smtp_user: str = ""
    """SMTP login; empty = none."""
    smtp_password: str = ""
    """SMTP password."""
    smtp_from: str = "fastlane@localhost"
    """Sender address of the e-mails."""
    smtp_timeout_s: float = Field(default=10.0, gt=0, le=120)
    """Timeout of each SMTP exchange."""

    @property
    def notify_backoff(self) -> RetryBackoff:
        return RetryBackoff(
            min_ms=self.notify_backoff_min_ms, factor=self.notify_backoff_factor, max_ms=self.notify_backoff_max_ms
        )


class RunnerSettings(Settings):
    """One runner serves one Docker host."""

    docker_host: str = ""
    """Docker engine address (`unix:///var/run/docker.sock`, `tcp://h:2375`, `tcp://h:2376` with TLS); empty = the
    standard Docker environment (`DOCKER_HOST`)."""
    host_name: str = ""
    """Name this runner reports for its host in events and the API, as listed in its farm's `hosts` (default: the
    docker_host or `local`)."""
    farm: str = ""
    """The farm this runner serves; empty = the farm that lists host_name, else the first farm."""
    max_running: int | None = Field(default=None, ge=1)
    """Most executions at once; empty = this host's share of its farm's `maxRunning`."""
    max_log_bytes: int = Field(default=256 * 1024, ge=1024)
    """Largest stdout or stderr kept per execution (the rest is cut, keeping the end, with a note)."""
    stop_grace_s: float = Field(default=10.0, ge=0)
    """Between SIGTERM and SIGKILL when stopping a container (stop request or timeout)."""
    output_chunk_bytes: int = Field(default=16 * 1024, ge=256, le=256 * 1024)
    """Largest live output chunk (ExecutionOutput) the runner publishes."""
    output_chunks_per_s: float = Field(default=20.0, gt=0, le=1000)
    """Most live output chunks per second per execution: output written faster is gathered into fewer chunks."""
    output_rate_bytes_s: int = Field(default=64 * 1024, ge=1024)
    """Live output bytes per second per execution, on average; beyond it (and the burst) output is skipped from
    the live stream, with the count of skipped bytes (the final log is unaffected)."""
    output_burst_bytes: int = Field(default=1024 * 1024, ge=1024)
    """Live output an execution may publish at once above its rate (a token bucket of this size)."""
    heartbeat_interval_s: float = Field(default=5.0, gt=0)
    """How often the runner sends its heartbeat, rewrites its liveness token, pings its engine, reads the blacklist and
    checks stop requests."""
    docker_tls_ca: str = ""
    """TLS for a `tcp://` engine (paths): the CA the engine's certificate is checked against (`REQUESTS_CA_BUNDLE` and
    `CURL_CA_BUNDLE` are ignored for the engine)."""
    docker_tls_cert: str = ""
    """TLS client certificate for a `tcp://` engine (path)."""
    docker_tls_key: str = ""
    """TLS client key for a `tcp://` engine (path)."""
    pull_policy: Literal["IfNotPresent", "Always"] = "IfNotPresent"
    """`IfNotPresent`: pull only images the engine lacks; `Always`: pull before every execution."""
    registry_auth: dict[str, dict[str, str]] = {}
    """Registry credentials by registry host: `{"registry.example:5000": {"username": "u", "password": "p"}}`."""
    breaker_threshold: int = Field(default=3, ge=1)
    """Circuit breaker: after this many consecutive engine failures, no new work for breaker_open_s."""
    breaker_open_s: float = Field(default=30.0, gt=0)
    """How long the circuit stays open before work is taken again (half-open)."""
    host_lost_after_s: float = Field(default=60.0, gt=0)
    """A host of this runner's farm without a sign of life for this long is lost: its executions end `failed`; an
    engine silent for this long fails the executions its runner follows."""

    @property
    def host_label(self) -> str:
        return self.host_name or self.docker_host or "local"

    @property
    def my_farm(self) -> Farm:
        if self.farm:
            for f in self.farms:
                if f.name == self.farm:
                    return f
            raise ValueError(f"FASTLANE_FARM={self.farm!r} names no configured farm ({[f.name for f in self.farms]})")
        return next((f for f in self.farms if self.host_label in f.hosts), self.farms[0])

    @property
    def capacity(self) -> int:
        return self.max_running or self.my_farm.share(self.host_label)
