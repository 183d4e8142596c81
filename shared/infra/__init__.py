"""Plumbing to the backing services: Kafka (producer, consumer loop), Cassandra (connect, migrate), batched
writes, waiting for a port, and telling an outage from a poison message."""
