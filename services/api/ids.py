"""The ids in a URL path, each in its one written form: a task id, and job and execution UUIDs."""

import re
import uuid

from services.api.errors import BadRequest

# Matched against the WHOLE value (fullmatch): `$` alone would let a trailing newline through.
TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}")
TASK_ID_RULE = "1-200 characters of letters, digits, '_', '.', ':' or '-' (ASCII), starting with a letter or digit"
UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def check_task_id(task_id: str) -> str:
    if not TASK_ID.fullmatch(task_id):
        raise BadRequest(f"taskId must be {TASK_ID_RULE}")
    return task_id


def parse_uuid(value: str, what: str) -> uuid.UUID:
    """A job or execution id in its one written form (uuid.UUID alone also takes braces, `urn:uuid:` and no
    hyphens: one resource would answer at several URLs)."""
    if not UUID_TEXT.fullmatch(value):
        raise BadRequest(f"{what} must be a UUID like 3fa85f64-5717-4562-b3fc-2c963f66afa6, got {value[:100]!r}")
    return uuid.UUID(value)
