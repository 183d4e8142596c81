"""Topic names. Every topic is keyed by job id."""

from dataclasses import dataclass

from shared.settings import Settings


@dataclass(frozen=True)
class Topics:
    """The topics of one stack (names carry the configured prefix)."""

    jobs: str  # JobRequested (and later stop/retry orders): API -> scheduler, recorder
    due: str  # ExecutionDue: scheduler -> runners, recorder
    executions: str  # ExecutionStarted/ExecutionFinished: runners -> scheduler, recorder, subscribers
    control: str  # StopExecution broadcasts: scheduler -> every runner
    heartbeats: str  # RunnerHeartbeat: runners -> recorder (keyed by host)
    scheduler_state: str  # compacted: the scheduler's per-job state (internal)
    dead_letter: str  # messages no handler could parse, parked with their origin

    @classmethod
    def from_settings(cls, settings: Settings) -> "Topics":
        p = settings.topic_prefix
        return cls(
            jobs=f"{p}jobs",
            due=f"{p}executions.due",
            executions=f"{p}executions",
            control=f"{p}control",
            heartbeats=f"{p}heartbeats",
            scheduler_state=f"{p}scheduler.state",
            dead_letter=f"{p}dlq",
        )

    def all(self) -> list[str]:
        return [
            self.jobs,
            self.due,
            self.executions,
            self.control,
            self.heartbeats,
            self.scheduler_state,
            self.dead_letter,
        ]

    def config(self, name: str) -> dict[str, str]:
        """Per-topic settings: the scheduler's state keeps the latest record per job, forever."""
        if name == self.scheduler_state:
            return {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}
        if name == self.heartbeats:
            return {"retention.ms": str(6 * 3600 * 1000)}
        return {}


def group_id(settings: Settings, service: str) -> str:
    return f"{settings.topic_prefix}{service}"
