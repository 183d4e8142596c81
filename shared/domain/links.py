"""The API's resource URLs from a base address (the request's for the API, the configured public one for
notifications)."""

import uuid


class Links:
    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")

    def task(self, task_id: str) -> str:
        return f"{self.base}/tasks/{task_id}"

    def job(self, task_id: str, job_id: uuid.UUID | str) -> str:
        return f"{self.task(task_id)}/jobs/{job_id}"

    def execution(self, task_id: str, job_id: uuid.UUID | str, execution_id: uuid.UUID | str) -> str:
        return f"{self.job(task_id, job_id)}/executions/{execution_id}"
