"""Live logs: WebSocket followers of an execution or of a job, and the Server-Sent Events form of the same
messages (served by the logs routes with `?follow=true`). Messages: docs/live-logs.md."""

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable

from fastapi import APIRouter, WebSocket
from fastapi.responses import StreamingResponse

from services.api.bootstrap import Backends
from services.api.errors import ApiError, BadRequest, NotFound, Unavailable
from services.api.ids import parse_uuid
from services.api.live.follow import KEEPALIVE, Follower, Message
from services.api.security import authorized

log = logging.getLogger(__name__)
router = APIRouter()

# WebSocket close codes: 1000 the execution (or the job) ended, the reason being its final status; 4400 bad
# ids, 4401 not authenticated, 4404 unknown task, job or execution; 1011 fastlane failed.
NOT_FOUND, BAD_REQUEST, UNAUTHORIZED = 4404, 4400, 4401
Follow = Callable[[Follower], AsyncGenerator[Message, None]]


def follower_of(backends: Backends) -> Follower:
    if backends.follower is None:
        raise Unavailable("live logs are not available on this API process")
    return backends.follower


def encode_sse(message: Message) -> bytes:
    """One SSE event: `event: <type>` and the message as JSON on one `data:` line (JSON escapes every line
    break, so no text can end the event early); a keep-alive is a comment line."""
    if message is KEEPALIVE:
        return b": keep-alive\n\n"
    return f"event: {message['type']}\ndata: {json.dumps(message)}\n\n".encode()


async def event_stream(follow: AsyncGenerator[Message, None]) -> StreamingResponse:
    """The SSE response; the first message is read before answering, so an unknown id answers 404 as JSON."""
    first = await anext(follow)

    async def body() -> AsyncIterator[bytes]:
        try:
            yield encode_sse(first)
            async for message in follow:
                yield encode_sse(message)
        finally:
            await follow.aclose()

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def serve_websocket(websocket: WebSocket, follow: Follow) -> None:
    backends: Backends = websocket.app.state.backends
    if not authorized(backends.settings, websocket.headers.get("authorization", "")):
        await websocket.close(UNAUTHORIZED, "authentication required")
        return
    await websocket.accept()
    try:
        messages = follow(follower_of(backends))
    except ApiError as exc:
        await _close(websocket, exc)
        return
    ended: list[str] = []

    async def pump() -> None:
        async for message in messages:
            if message is KEEPALIVE:
                continue  # the server's WebSocket pings keep the connection alive
            if message["type"] == "end":
                ended.append(message["status"])
            await websocket.send_text(json.dumps(message))

    async def until_gone() -> None:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass  # what a client sends is ignored

    sending, listening = asyncio.create_task(pump()), asyncio.create_task(until_gone())
    try:
        await asyncio.wait({sending, listening}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sending, listening):
            task.cancel()
        with contextlib.suppress(BaseException):
            await messages.aclose()
    if listening.done() and not listening.cancelled():
        return  # the client left
    error = sending.exception() if sending.done() and not sending.cancelled() else None
    if error is None:
        await websocket.close(1000, (ended or ["done"])[-1])
    elif isinstance(error, ApiError):
        await _close(websocket, error)
    else:
        log.error("live follower failed", exc_info=error)
        await websocket.close(1011, "fastlane failed to follow this output")


async def _close(websocket: WebSocket, error: ApiError) -> None:
    code = NOT_FOUND if isinstance(error, NotFound) else BAD_REQUEST if isinstance(error, BadRequest) else 1011
    with contextlib.suppress(Exception):
        await websocket.send_text(json.dumps({"type": "error", "message": str(error)}))
        await websocket.close(code, str(error)[:120])


@router.websocket("/tasks/{task_id}/jobs/{job_id}/executions/{execution_id}/ws")
@router.websocket("/tasks/{task_id}/jobs/{job_id}/executions/{execution_id}/ws/")
async def execution_websocket(websocket: WebSocket, task_id: str, job_id: str, execution_id: str) -> None:
    """An execution's output as it is written (the output so far first); closes with the final status."""

    def follow(follower: Follower) -> AsyncGenerator[Message, None]:
        jid, eid = parse_uuid(job_id, "jobId"), parse_uuid(execution_id, "executionId")
        return follower.execution(task_id, jid, eid)

    await serve_websocket(websocket, follow)


@router.websocket("/tasks/{task_id}/jobs/{job_id}/ws")
@router.websocket("/tasks/{task_id}/jobs/{job_id}/ws/")
async def job_websocket(websocket: WebSocket, task_id: str, job_id: str) -> None:
    """The job's latest execution's output, then each next one's (cron fires, retries), until the job has
    nothing more to run; closes with the last execution's final status."""

    def follow(follower: Follower) -> AsyncGenerator[Message, None]:
        return follower.job(task_id, parse_uuid(job_id, "jobId"))

    await serve_websocket(websocket, follow)
