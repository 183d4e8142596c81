"""Cassandra plumbing: connecting (with patience at start-up) and migrating the tables the stores declare."""

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cassandra import ConsistencyLevel, InvalidRequest, OperationTimedOut
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, ResponseFuture, Session
from cassandra.policies import ConstantSpeculativeExecutionPolicy, DCAwareRoundRobinPolicy, TokenAwarePolicy
from cassandra.query import PreparedStatement
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from shared.infra.net import wait_for_port
from shared.process.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Schema:
    """The tables one store declares (each next to the code that uses them): CQL with `{ks}` for the keyspace,
    every statement idempotent; columns added after a table's first release; and the tables whose rows expire
    `FASTLANE_EXECUTION_RETENTION_DAYS` after they were last written."""

    tables: tuple[str, ...]
    added_columns: tuple[tuple[str, str, str], ...] = ()
    retained: tuple[str, ...] = ()


async def awaited(request: ResponseFuture) -> list[Any]:
    """The rows of a request sent with the driver's `execute_async`, awaited on the running event loop: no
    thread waits for Cassandra (the driver's own I/O thread settles the future)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[list[Any]] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if done.cancelled():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(list(result or ()))

    request.add_callbacks(
        lambda rows: loop.call_soon_threadsafe(settle, rows, None),
        lambda error: loop.call_soon_threadsafe(settle, None, error),
    )
    return await done


def serial(session: Session, statement: PreparedStatement) -> PreparedStatement:
    """`statement` (a read) at the session's serial consistency: it sees the outcome of every lightweight transaction
    on its row, one still in flight included (a plain quorum read may miss a Paxos proposal not yet committed)."""
    statement.consistency_level = session.cluster.profile_manager.default.serial_consistency_level
    return statement


# A read not answered after this is sent once more, to the next coordinator (only statements marked idempotent:
# `retried_reads`): a coordinator that chose a replica just killed, not yet known dead, waits for its timeout.
SPECULATE_AFTER_S = 2.0


def retried_reads(holder: object) -> None:
    """Mark every SELECT prepared on `holder` (its attributes) idempotent: the driver may send it again to another
    coordinator when the first is slow (speculative execution) or its connection dies. Writes are never marked
    (counters and lightweight transactions must not run twice)."""
    for value in vars(holder).values():
        if isinstance(value, PreparedStatement) and value.query_string.lstrip().upper().startswith("SELECT"):
            value.is_idempotent = True


def _profile(settings: Settings) -> ExecutionProfile:
    """Every statement's defaults: token-aware routing (the coordinator is a replica of the row), the configured
    consistency for reads and writes and for the Paxos phase of lightweight transactions."""
    return ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
        request_timeout=10,
        consistency_level=ConsistencyLevel.name_to_value[settings.cassandra_consistency],
        serial_consistency_level=ConsistencyLevel.name_to_value[settings.cassandra_serial_consistency],
        speculative_execution_policy=ConstantSpeculativeExecutionPolicy(delay=SPECULATE_AFTER_S, max_attempts=1),
    )


def _add_column(session: Session, table: str, column: str, kind: str) -> None:
    try:
        session.execute(f"ALTER TABLE {table} ADD {column} {kind}", timeout=60)
    except InvalidRequest as exc:
        if "conflicts with an existing column" not in str(exc) and "already exist" not in str(exc):
            raise


def connect(settings: Settings) -> tuple[Cluster, Session]:
    """Connect, retrying until the node answers or the start-up timeout passes."""
    wait_for_port(
        [(host, settings.cassandra_port) for host in settings.cassandra_contact_points],
        settings.startup_timeout_s,
        "Cassandra",
    )
    deadline = time.monotonic() + settings.startup_timeout_s
    while True:
        cluster = Cluster(
            settings.cassandra_contact_points,
            port=settings.cassandra_port,
            connect_timeout=5,
            execution_profiles={EXEC_PROFILE_DEFAULT: _profile(settings)},
            protocol_version=5,
            # After each schema change (the migration), wait until every node has it before the next one: a change
            # sent while nodes disagree can leave them disagreeing (busy nodes take seconds to agree).
            max_schema_agreement_wait=60,
        )
        try:
            return cluster, cluster.connect()
        except NoHostAvailable:
            cluster.shutdown()
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def migrate(settings: Settings, schemas: Sequence[Schema]) -> None:
    """Create the keyspace and the stores' tables when missing (safe to run again, and from several processes).
    Every statement is idempotent, so one whose answer did not come (a busy node: the cluster test saw "connection
    defunct by heartbeat" under load) is sent again, with growing pauses, until the start-up timeout."""
    cluster, session = connect(settings)

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        log.warning("schema change not answered; sent again", extra={"error": str(error)})
        # The change may have been applied where it was sent: the nodes agree on it before it is sent again, or
        # another coordinator could create the same table a second time under another id.
        cluster.control_connection.wait_for_schema_agreement(wait_time=60)

    retrying = Retrying(
        retry=retry_if_exception_type((OperationTimedOut, NoHostAvailable)),
        wait=wait_exponential(multiplier=1, max=10),
        stop=stop_after_delay(settings.startup_timeout_s),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        retrying(
            session.execute,
            f"CREATE KEYSPACE IF NOT EXISTS {settings.keyspace} WITH replication = "
            f"{{'class': 'SimpleStrategy', 'replication_factor': {settings.cassandra_replication_factor}}}",
            timeout=60,
        )
        for schema in schemas:
            for statement in schema.tables:
                retrying(session.execute, statement.format(ks=settings.keyspace), timeout=60)
            for table, column, kind in schema.added_columns:
                retrying(_add_column, session, f"{settings.keyspace}.{table}", column, kind)
            for table in schema.retained:
                retrying(_set_retention, session, settings.keyspace, table, settings.execution_retention_days)
        log.info("schema ready", extra={"keyspace": settings.keyspace})
    finally:
        cluster.shutdown()


def _set_retention(session: Session, keyspace: str, table: str, days: int) -> None:
    """The table's rows expire `days` after they were last written; 0 keeps them forever."""
    ttl = days * 86_400
    row = session.execute(
        "SELECT default_time_to_live FROM system_schema.tables WHERE keyspace_name = %s AND table_name = %s",
        (keyspace, table),
    ).one()
    if row is not None and row.default_time_to_live != ttl:
        session.execute(f"ALTER TABLE {keyspace}.{table} WITH default_time_to_live = {ttl}", timeout=60)
