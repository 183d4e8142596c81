"""Topic names. Every topic is keyed by job id."""

from dataclasses import dataclass, field

from shared.domain.farms import due_topic, farm_for
from shared.process.settings import Settings


@dataclass(frozen=True)
class Topics:
    """The topics of one stack (names carry the configured prefix)."""

    jobs: str  # JobRequested (and later stop/retry orders): API -> scheduler, recorder
    due: str  # ExecutionDue of the first farm: scheduler -> that farm's runners, recorder
    executions: str  # ExecutionStarted/ExecutionFinished: runners -> scheduler, recorder, subscribers
    control: str  # StopExecution broadcasts: scheduler -> every runner
    heartbeats: str  # RunnerHeartbeat: runners -> recorder (keyed by host)
    scheduler_state: str  # compacted: the scheduler's per-job state (internal)
    scheduler_archive: str  # compacted: the states of jobs without pending work, read only when an order needs one
    dead_letter: str  # messages no handler could parse, parked with their origin
    output: str = ""  # ExecutionOutput, keyed by execution id: runners -> recorder, the API's live followers
    # ExecutionDue per farm (farm name -> topic): scheduler -> the runners of that farm, recorder.
    farm_due: dict[str, str] = field(default_factory=dict)
    settings: Settings | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> "Topics":
        p = settings.topic_prefix
        return cls(
            jobs=f"{p}jobs",
            due=due_topic(p, settings.farms[0].name),
            executions=f"{p}executions",
            control=f"{p}control",
            heartbeats=f"{p}heartbeats",
            scheduler_state=f"{p}scheduler.state",
            scheduler_archive=f"{p}scheduler.state.idle",
            dead_letter=f"{p}dlq",
            output=f"{p}output",
            farm_due={f.name: due_topic(p, f.name) for f in settings.farms},
            settings=settings,
        )

    @property
    def all_due(self) -> list[str]:
        return list(dict.fromkeys([self.due, *self.farm_due.values()]))

    def due_for(self, task_id: str) -> str:
        """The due topic of the farm that takes `task_id` (the first farm when none matches)."""
        farms = self.settings.farms if self.settings else []
        farm = farm_for(task_id, farms)
        return self.farm_due[farm.name] if farm else self.due

    def all(self) -> list[str]:
        return [
            self.jobs,
            *self.all_due,
            self.executions,
            self.control,
            self.heartbeats,
            self.scheduler_state,
            self.scheduler_archive,
            self.dead_letter,
            self.output,
        ]

    def config(self, name: str) -> dict[str, str]:
        """Per-topic settings (set on topics made by an earlier version too): one message size limit everywhere;
        the scheduler's state and archive keep the latest record per job, forever, compacted close behind (a
        segment is only compacted once closed: without a roll every 10 min the state topic would be read
        uncompacted for 7 days at every rebalance); heartbeats are kept six hours; live output
        `output_retention_hours` (the recorder's table keeps it as long as the executions)."""
        size = {"max.message.bytes": str(self.settings.max_message_bytes if self.settings else 2 * 1024 * 1024)}
        if self.settings:  # with acks=all, how many replicas must have a write before it is acknowledged
            size["min.insync.replicas"] = str(self.settings.kafka_min_insync_replicas)
        if name in (self.scheduler_state, self.scheduler_archive):
            return size | {
                "cleanup.policy": "compact",
                "min.compaction.lag.ms": "60000",
                "segment.ms": "600000",
                "delete.retention.ms": "600000",
            }
        if name == self.heartbeats:
            return size | {"retention.ms": str(6 * 3600 * 1000)}
        if name == self.output:
            hours = self.settings.output_retention_hours if self.settings else 24
            return size | {"retention.ms": str(hours * 3600 * 1000)}
        return size


def group_id(settings: Settings, service: str) -> str:
    return f"{settings.topic_prefix}{service}"


def runner_group(settings: Settings, farm: str) -> str:
    """The runners of one farm share one consumer group (the default farm's keeps its original name)."""
    return group_id(settings, "runner" if farm == "default" else f"runner.{farm}")
