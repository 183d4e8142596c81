"""The HTTP API.

Consumes: HTTP requests (JSON job definitions, operator actions); reads the Cassandra read model the recorder
maintains (tasks, jobs, executions, deliveries, hosts) and its own `idempotency_keys` table.
Produces: orders on Kafka, each in a transaction (services/api/orders.py): JobRequested (POST), JobUpdated
(PUT), JobStopRequested, JobRetryRequested and ExecutionStopRequested on the jobs topic, HostBlacklisted on
the control topic; and, right after each, the same rows the recorder will write (read-your-writes).

Layout: `__main__` (entrypoint) -> `app` (middlewares, routers, errors) -> `routers/` (one per resource:
tasks, jobs, executions, logs, hosts, health, status) -> `job_orders` (the one builder of POST's and PUT's
order) and `accepting` (the write use case) over the ports in `ports`; `bootstrap` builds the adapters
(`orders`, `idempotency`, `queries`, the recorder's projection) and `deps` hands them to the routes.
"""
