"""Wiring of the API: what routes depend on, built once at start-up (`bootstrap`) and reached via Depends."""

import logging
from dataclasses import dataclass
from typing import Annotated

from cassandra.cluster import Cluster, Session
from fastapi import Depends, Request

from services.api.idempotency import IdempotencyKeys
from services.api.orders import OrderPublisher
from services.api.queries import Queries
from services.migrate import prepare_backends
from services.recorder.projections import Projections
from shared.contract.topics import Topics
from shared.infra.cassandra import connect
from shared.process.settings import ApiSettings

log = logging.getLogger(__name__)


@dataclass
class Backends:
    """Everything a request handler needs to talk to Kafka and Cassandra."""

    settings: ApiSettings
    topics: Topics
    orders: OrderPublisher
    keys: IdempotencyKeys
    projections: Projections
    queries: Queries
    cluster: Cluster
    session: Session

    def close(self) -> None:
        self.orders.close()
        self.cluster.shutdown()


def bootstrap(settings: ApiSettings) -> Backends:
    prepare_backends(settings)
    cluster, session = connect(settings)
    return Backends(
        settings=settings,
        topics=Topics.from_settings(settings),
        orders=OrderPublisher(settings),
        keys=IdempotencyKeys(session, settings.keyspace),
        projections=Projections(session, settings.keyspace),
        queries=Queries(session, settings.keyspace),
        cluster=cluster,
        session=session,
    )


def get_backends(request: Request) -> Backends:
    backends: Backends = request.app.state.backends
    return backends


def client_ip(request: Request) -> str | None:
    """The enqueuer's address for audit: X-Real-IP, then the first X-Forwarded-For, then the peer."""
    real = request.headers.get("x-real-ip", "").strip()
    if real:
        return real
    forwarded = request.headers.get("x-forwarded-for", "").split(",")[0].strip()
    if forwarded:
        return forwarded
    return request.client.host if request.client else None


BackendsDep = Annotated[Backends, Depends(get_backends)]
