"""The runner: serves one Docker host of a farm, running the containers of its executions.

Consumes: ExecutionDue from its farm's due topic (a consumer group per farm), StopExecution from the control
topic (every runner reads every one). Produces: ExecutionPulling, ExecutionStarted and ExecutionFinished on the
executions topic (the ends of lost peers' executions too), RunnerHeartbeat on the heartbeats topic, and an
ExecutionDue its engine could not start back on the farm's due topic. Keeps who runs what in the ledger
(Cassandra). Entry point `__main__.py`, wiring `bootstrap.py`, the poll loop and its parts `runner.py`.
"""
