"""Wiring of the API, the one place that builds adapters: the Kafka order publisher, the Cassandra session and
what reads and writes through it, and the write use case over them. `create_app` calls `bootstrap` at start-up
(tests hand it another); routes reach what it built through services/api/deps.py."""

import asyncio
from dataclasses import dataclass

from cassandra.cluster import Cluster, Session

from services.api.accepting import Acceptor
from services.api.idempotency import IdempotencyKeys
from services.api.live.follow import Follower
from services.api.live.hub import OutputHub
from services.api.live.reads import LiveReads
from services.api.orders import OrderPublisher
from services.api.ports import OrderPublishing
from services.api.queries import Queries
from services.migrate import await_migrated
from services.recorder.indexes import Indexes
from services.recorder.projections import Projections
from shared.contract.topics import Topics
from shared.infra.cassandra import connect
from shared.process.settings import ApiSettings


@dataclass
class Backends:
    """Everything a request handler needs to talk to Kafka and Cassandra."""

    settings: ApiSettings
    topics: Topics
    orders: OrderPublishing
    queries: Queries
    writes: Acceptor
    cluster: Cluster
    session: Session
    follower: Follower | None = None  # live logs (none: the routes answer 503)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Once the event loop runs: the live output consumer starts."""
        if self.follower is not None:
            self.follower.hub.start(loop)

    def close(self) -> None:
        if self.follower is not None:
            self.follower.hub.close()
        self.orders.close()
        self.cluster.shutdown()


def bootstrap(settings: ApiSettings, orders: OrderPublishing | None = None) -> Backends:
    """Prepare the topics and tables, connect, and build the adapters (`orders`: another publisher, for tests)."""
    await_migrated(settings)
    cluster, session = connect(settings)
    topics = Topics.from_settings(settings)
    orders = orders or OrderPublisher(settings)
    keys = IdempotencyKeys(session, settings.keyspace)
    projections = Projections(session, settings.keyspace, Indexes(session, settings.keyspace))
    return Backends(
        settings=settings,
        topics=topics,
        orders=orders,
        queries=Queries(session, settings.keyspace),
        writes=Acceptor(orders, projections, keys, topics),
        cluster=cluster,
        session=session,
        follower=Follower(OutputHub(settings), LiveReads(session, settings.keyspace)),
    )
