"""The recorder projects the event stream into the Cassandra tables the API (and the notifier) read.

Consumes: every message of the `jobs`, due (one topic per farm), `executions`, `heartbeats` and `control`
topics (one table says what each type writes: handlers.py).
Produces: the read model's rows (tables.py: tasks, jobs, executions, listings, counters, hosts, blacklist,
stop requests) and nothing on Kafka but the messages it cannot record, parked on the dead-letter topic.

bootstrap.py wires it; rows.py and indexes.py write; timestamps.py orders the writes; reads.py reads the read
model for other services; projections.py is the API's early write of its own orders.
"""
