"""Clients of fastlane for other programs: the HTTP API (`Client`, `AsyncClient`) and the execution events on
Kafka (`Subscriber`). docs/client.md shows both."""

from shared.client.http import AsyncClient, Client, FastlaneError, job_spec
from shared.client.subscriber import Subscriber

__all__ = ["AsyncClient", "Client", "FastlaneError", "Subscriber", "job_spec"]
