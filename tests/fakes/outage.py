"""What a fake raises while it does not answer."""


class NotAnswering(Exception):
    """A backing service that does not answer (Cassandra's driver raises NoHostAvailable or OperationTimedOut, the
    producer KafkaException): an outage, not the message's fault, so `shared.infra.failures.is_transient` holds
    it for one and a consumer waits it out instead of parking the message (held by the contract suites)."""

    transient = True
