"""API errors: raised anywhere in the API, mapped to an HTTP status and a plain message at the edge only."""


class ApiError(Exception):
    """Base of every error the API answers with a message."""

    status = 500

    def __init__(self, message: str) -> None:
        if len(message) > 2000:  # messages may quote the request: a huge value is not echoed whole
            message = message[:1997] + "..."
        super().__init__(message)
        self.message = message


class BadRequest(ApiError):
    """The request is malformed: the message says what is wrong."""

    status = 400


class NotFound(ApiError):
    """The task, job or execution does not exist."""

    status = 404


class PayloadTooLarge(ApiError):
    """The request body is larger than the configured limit."""

    status = 413


class Unavailable(ApiError):
    """A backing service (Kafka, Cassandra) did not answer in time."""

    status = 503


class KeyReused(ApiError):
    """An Idempotency-Key sent again with a different request."""

    status = 409


class OutcomeUnknown(ApiError):
    """The order was handed to Kafka and whether it was taken could not be learnt in time."""

    status = 504
