"""Configuration: one pydantic-settings class per service, all read from FASTLANE_* environment variables."""

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    # How long a service waits at start-up for Kafka and Cassandra to answer before giving up.
    startup_timeout_s: float = 180.0
    # No execution runs longer than this, whatever its own `timeout` says (the API caps, the runner enforces).
    timeout_hard_limit_s: float = Field(default=1800.0, gt=0)
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"

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
    # Env values whose NAME contains one of these words (case-insensitive) are shown as ***.
    env_blacklist: list[str] = ["password", "key", "secret", "client_id"]
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


class RunnerSettings(Settings):
    """One runner serves one Docker host."""

    # Docker engine address (unix:///var/run/docker.sock, tcp://h:2375); empty = the DOCKER_HOST environment.
    docker_host: str = ""
    # Name this runner reports for its host in events and the API (default: the docker_host or "local").
    host_name: str = ""
    max_running: int = Field(default=4, ge=1)
    # Largest stdout or stderr kept per execution (the rest is cut, with a note).
    max_log_bytes: int = Field(default=256 * 1024, ge=1024)
    # Between SIGTERM and SIGKILL when stopping a container (stop request or timeout).
    stop_grace_s: float = Field(default=10.0, ge=0)
    heartbeat_interval_s: float = Field(default=5.0, gt=0)

    @property
    def host_label(self) -> str:
        return self.host_name or self.docker_host or "local"
