"""Configuration: one pydantic-settings class per service, all read from FASTLANE_* environment variables."""

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.contract.events import RetryBackoff
from shared.domain.farms import Farm, name_farms


class Settings(BaseSettings):
    """What every service needs: where Kafka and Cassandra are, names, logging."""

    model_config = SettingsConfigDict(env_prefix="FASTLANE_", extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    # Prefix of every topic and consumer group: lets tests and several stacks share one broker.
    topic_prefix: str = "fastlane."
    topic_partitions: int = Field(default=6, ge=1)
    cassandra_hosts: str = "127.0.0.1"  # comma-separated
    cassandra_port: int = 9042
    keyspace: str = Field(default="fastlane", pattern=r"^[a-z][a-z0-9_]{0,47}$")
    cassandra_replication_factor: int = Field(default=1, ge=1)
    # Largest message any producer sends and any topic takes (each topic's max.message.bytes): job definitions
    # are bounded at the API to half of it and logs are clipped to fit, so every message fits by construction.
    max_message_bytes: int = Field(default=2 * 1024 * 1024, ge=256 * 1024, le=64 * 1024 * 1024)
    # How long a service waits at start-up for Kafka and Cassandra to answer before giving up.
    startup_timeout_s: float = 180.0
    # No execution runs longer than this, whatever its own `timeout` says (the API caps, the runner enforces).
    timeout_hard_limit_s: float = Field(default=1800.0, gt=0)
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    # How long finished executions (with their logs) are kept; 0 = forever.
    execution_retention_days: int = Field(default=0, ge=0)
    # Env values whose NAME contains one of these words (case-insensitive) are shown as *** (API, notifications).
    env_blacklist: list[str] = ["password", "key", "secret", "client_id"]
    # Refuse webhooks to loopback, private, link-local and other non-public addresses (checked by the API on
    # literal addresses and by the notifier on every address a name resolves to).
    webhooks_refuse_private: bool = False
    # Where clients reach the API: the base of the links in webhooks and e-mails.
    public_url: str = "http://127.0.0.1:10000"
    # Docker farms (JSON list): the first whose `match` regex matches a task id runs that task's jobs.
    farms: list[Farm] = [Farm(name="default", match="", hosts=["local"], maxRunning=4)]

    @field_validator("farms")
    @classmethod
    def _named(cls, farms: list[Farm]) -> list[Farm]:
        return name_farms(farms)

    @property
    def cassandra_contact_points(self) -> list[str]:
        return [h.strip() for h in self.cassandra_hosts.split(",") if h.strip()]


class ApiSettings(Settings):
    """The HTTP API."""

    api_host: str = "127.0.0.1"
    api_port: int = 10000
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    page_size: int = Field(default=10, ge=1, le=1000)  # GET /tasks and /search
    executions_page_size: int = Field(default=100, ge=1, le=10_000)  # executions shown per page of a job
    cors_origins: list[str] = ["*"]
    # HTTP basic auth: on when both username and password are set.
    basic_auth_username: str = ""
    basic_auth_password: str = ""
    basic_auth_realm: str = "fastlane"
    # Bearer tokens accepted in `Authorization: Bearer <token>` (any of them); empty = none.
    bearer_tokens: list[str] = []
    healthcheck_timeout_s: float = Field(default=3.0, gt=0, le=10)
    # A host whose runner has not reported for this long is shown unavailable in /status.
    host_stale_after_s: float = Field(default=15.0, gt=0)


class SchedulerSettings(Settings):
    """The scheduler: retry defaults and instance identity."""

    # Transactional identity; empty = a random one per process (set a stable one per replica to make a
    # restarted replica fence its predecessor at once instead of after the 10 s transaction timeout).
    scheduler_instance: str = ""
    retry_backoff_min_ms: int = Field(default=1000, ge=1)
    retry_backoff_factor: float = Field(default=2.0, ge=1.0)
    retry_backoff_max_ms: int = Field(default=300_000, ge=1)
    # A cron fire later than this was missed (everything was down): catchUp decides whether it still runs.
    missed_fire_grace_s: float = Field(default=30.0, gt=0)


class NotifierSettings(Settings):
    """The notifier: webhook signing and retries, SMTP."""

    # HMAC-SHA256 key of the X-Fastlane-Signature header; empty = deliveries go unsigned (a warning at start).
    webhook_secret: str = ""
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=120)
    # Retries of a webhook that says nothing about them, and of every e-mail.
    webhook_default_retries: int = Field(default=3, ge=0, le=20)
    mail_retries: int = Field(default=3, ge=0, le=20)
    # Pause before retry n: min(max, min * factor ** (n - 1)).
    notify_backoff_min_ms: int = Field(default=1000, ge=1)
    notify_backoff_factor: float = Field(default=2.0, ge=1.0)
    notify_backoff_max_ms: int = Field(default=300_000, ge=1)
    # An execution event whose job row is not written yet (the API's early write failed, the recorder lags) is
    # looked at again every notify_job_recheck_s, for up to notify_job_wait_s; then parked with the reason.
    notify_job_wait_s: float = Field(default=3600.0, gt=0)
    notify_job_recheck_s: float = Field(default=1.0, gt=0)
    # Deliveries in flight at once: a slow receiver holds one of these, never the queue.
    notify_workers: int = Field(default=16, ge=1, le=256)
    # SMTP: empty host = e-mail off (such deliveries fail with that reason).
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_security: Literal["none", "starttls", "tls"] = "none"
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_from: str = "fastlane@localhost"
    smtp_timeout_s: float = Field(default=10.0, gt=0, le=120)

    @property
    def notify_backoff(self) -> RetryBackoff:
        return RetryBackoff(
            min_ms=self.notify_backoff_min_ms, factor=self.notify_backoff_factor, max_ms=self.notify_backoff_max_ms
        )


class RunnerSettings(Settings):
    """One runner serves one Docker host."""

    # Docker engine address (unix:///var/run/docker.sock, tcp://h:2375); empty = the DOCKER_HOST environment.
    docker_host: str = ""
    # Name this runner reports for its host in events and the API, as listed in its farm's `hosts`
    # (default: the docker_host or "local").
    host_name: str = ""
    # The farm this runner serves; empty = the farm that lists host_name, else the first farm.
    farm: str = ""
    # Most executions at once; empty = this host's share of its farm's maxRunning.
    max_running: int | None = Field(default=None, ge=1)
    # Largest stdout or stderr kept per execution (the rest is cut, with a note).
    max_log_bytes: int = Field(default=256 * 1024, ge=1024)
    # Between SIGTERM and SIGKILL when stopping a container (stop request or timeout).
    stop_grace_s: float = Field(default=10.0, ge=0)
    heartbeat_interval_s: float = Field(default=5.0, gt=0)
    # TLS client certificates for a tcp:// engine (paths; all three or none).
    docker_tls_ca: str = ""
    docker_tls_cert: str = ""
    docker_tls_key: str = ""
    # IfNotPresent: pull only images the engine lacks; Always: pull before every execution.
    pull_policy: Literal["IfNotPresent", "Always"] = "IfNotPresent"
    # Registry credentials by registry host: {"registry.example:5000": {"username": "u", "password": "p"}}.
    registry_auth: dict[str, dict[str, str]] = {}
    # Circuit breaker: after this many consecutive engine failures, no new work for breaker_open_s.
    breaker_threshold: int = Field(default=3, ge=1)
    breaker_open_s: float = Field(default=30.0, gt=0)
    # A host of this runner's farm without a heartbeat for this long is lost: its executions end `failed`.
    host_lost_after_s: float = Field(default=60.0, gt=0)

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
