"""The runner's wiring: builds the adapters (Docker engine, Kafka producer and consumers, Cassandra ledger) and
hands them to the Runner; nothing else."""

import functools
import logging
import threading

import docker
from confluent_kafka import Consumer

from services.migrate import await_migrated
from services.runner.docker_runtime import DockerRuntime
from services.runner.handlers import Limits
from services.runner.ledger import CassandraLedger
from services.runner.output import OutputLimits
from services.runner.runner import Runner
from services.runner.stops import listener_config
from shared.contract.topics import Topics, runner_group
from shared.infra.cassandra import connect
from shared.infra.kafka.consumer import consumer_config, decode_or_park
from shared.infra.kafka.consumer_stall import StallWatch
from shared.infra.kafka.producer import EventProducer, OutputProducer
from shared.process.metrics import serve_probes
from shared.process.settings import RunnerSettings

log = logging.getLogger("runner")


def limits_from(settings: RunnerSettings) -> Limits:
    return Limits(
        settings.max_log_bytes,
        settings.timeout_hard_limit_s,
        settings.stop_grace_s,
        settings.host_lost_after_s,
        settings.max_message_bytes,
        OutputLimits(
            settings.output_chunk_bytes,
            settings.output_chunks_per_s,
            settings.output_rate_bytes_s,
            settings.output_burst_bytes,
        ),
    )


def docker_tls(settings: RunnerSettings) -> docker.tls.TLSConfig | None:
    if not settings.docker_tls_cert:
        return None
    return docker.tls.TLSConfig(  # the engine's certificate is checked: against docker_tls_ca, else the usual CAs
        client_cert=(settings.docker_tls_cert, settings.docker_tls_key),
        ca_cert=settings.docker_tls_ca or None,
        verify=True,
    )


def serve(settings: RunnerSettings, stop: threading.Event) -> None:
    await_migrated(settings)
    limits = limits_from(settings)
    runtime = DockerRuntime(
        settings.docker_host,
        settings.pull_policy,
        settings.registry_auth,
        docker_tls(settings),
        log_tail_bytes=limits.log_budget,
    )
    producer = EventProducer(settings)
    output = OutputProducer(settings, Topics.from_settings(settings).output)
    cluster, session = connect(settings)
    probes = serve_probes(settings, session)
    group = runner_group(settings, settings.my_farm.name)
    stall_watch = StallWatch()  # replaces a consumer stalled after a broker pause (consumer_stall.py)
    runner = Runner(
        settings,
        limits,
        runtime,
        producer,
        CassandraLedger(session, settings.keyspace),
        open_consumer=lambda: Consumer(consumer_config(settings, group, on_stats=stall_watch.statistics)),
        open_control_consumer=lambda: Consumer(listener_config(settings)),
        decode=functools.partial(decode_or_park, producer=producer, topics=Topics.from_settings(settings)),
        output=output,
        stall_watch=stall_watch,
    )
    log.info("runner started", extra={"host": runner.host, "farm": runner.farm.name, "capacity": runner.capacity})
    try:
        runner.run(stop)
    finally:
        output.close()
        producer.close()
        if probes is not None:
            probes.close()
        cluster.shutdown()
        log.info("runner stopped")
