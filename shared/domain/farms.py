"""Farms: groups of Docker hosts that take the jobs of the tasks whose id matches their regex.

A farm's executions travel on a due topic of its own, consumed only by the runners of that farm's hosts (one
runner per host), so routing is decided once, by the scheduler, and never re-checked downstream.
"""

import re
from functools import cached_property

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_FARM = "default"


class Farm(BaseModel):
    """`{"name", "match", "hosts", "maxRunning"}` as in the configuration (FASTLANE_FARMS, a JSON list)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="", pattern=r"^([a-z0-9][a-z0-9-]{0,39})?$")
    match: str = ""  # regex on the task id, matched at its start; "" takes every task
    hosts: list[str] = Field(min_length=1)
    maxRunning: int = Field(ge=1)

    @field_validator("match")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"match is not a valid regular expression: {exc}") from exc
        return v

    @model_validator(mode="after")
    def _enough_slots(self) -> "Farm":
        if self.maxRunning < len(self.hosts):
            raise ValueError(f"farm {self.name or self.match!r}: maxRunning must be at least its number of hosts")
        return self

    @cached_property
    def regex(self) -> re.Pattern[str]:
        return re.compile(self.match)

    def takes(self, task_id: str) -> bool:
        return self.regex.match(task_id) is not None

    def share(self, host: str) -> int:
        """The most executions `host` runs at once: maxRunning split over the hosts (the first ones get the
        remainder), so the farm as a whole never runs more than maxRunning."""
        base, extra = divmod(self.maxRunning, len(self.hosts))
        index = self.hosts.index(host) if host in self.hosts else len(self.hosts) - 1
        return base + (1 if index < extra else 0)


def name_farms(farms: list[Farm]) -> list[Farm]:
    """Farms without a name get `default` (the first) or `farm-<n>`; names must be unique."""
    named = [
        f if f.name else f.model_copy(update={"name": DEFAULT_FARM if i == 0 else f"farm-{i}"})
        for i, f in enumerate(farms)
    ]
    names = [f.name for f in named]
    if len(set(names)) != len(names):
        raise ValueError(f"farm names must be unique, got {names}")
    if not named:
        raise ValueError("at least one farm is needed")
    return named


def farm_for(task_id: str, farms: list[Farm]) -> Farm | None:
    """The first farm whose regex matches the task id."""
    return next((f for f in farms if f.takes(task_id)), None)


def due_topic(prefix: str, farm: str) -> str:
    """The default farm keeps the original topic name, so a single-farm stack is unchanged."""
    return f"{prefix}executions.due" if farm == DEFAULT_FARM else f"{prefix}executions.due.{farm}"
