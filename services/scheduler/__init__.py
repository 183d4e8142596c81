"""The scheduler decides when executions run, exactly once, and emits ExecutionDue.

Consumes: the `jobs` topic (the API's orders: JobRequested, JobUpdated, JobStopRequested, JobRetryRequested,
ExecutionStopRequested) and the `executions` topic (ExecutionFinished ends an execution, may set a retry); on
an assignment, its own `scheduler.state` topic (jobs with pending work) and, for an order that needs one, its
`scheduler.state.idle` archive (jobs without).
Produces: ExecutionDue on the due topic of the job's farm, StopExecution on `control`, a `failed`
ExecutionFinished on `executions` for a job it cannot schedule; the new job states on `scheduler.state` or the
archive; unreadable messages on the dead-letter topic.
Each step (messages consumed, timers fired, states, messages produced, consumer offsets) is one Kafka
transaction: exactly once, and a zombie instance whose partitions moved on is fenced.

Modules: `handlers` (pure decisions, dispatched by message type), `state` (a job's state), `step` (one batch's
decisions), `loop` (consume-transform-produce), `transactions` (the guarded producer), `job_store` and
`state_reader` (the jobs in memory, loaded from the state and archive topics), `timers` (when they fire next),
`rebalance` (partitions assigned and revoked), `bootstrap` (wiring), `__main__` (entrypoint).
"""
