"""The notifier: webhooks and e-mail about executions, delivered apart from everything else.

Consumes: ExecutionStarted and ExecutionFinished from the `executions` topic (one table: handlers.py), and
reads each job's definition from the recorder's `jobs` table (services/recorder/reads.py).
Produces: webhook POSTs and e-mails; the deliveries' state in Cassandra (store.py: pending and history, shown by
the API); events whose job never came, parked on the dead-letter topic.

bootstrap.py wires it; consumer.py runs the loop; plan.py (what to deliver) and decisions.py (when to retry,
how long to wait) are pure; dispatcher.py attempts deliveries; ports.py names what it needs, and send.py,
store.py and waiting.py are the adapters.
"""
