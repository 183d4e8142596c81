"""The scheduler decides when executions run and emits ExecutionDue."""
