"""Live logs through the whole stack: a real container's output, published by the runner, kept by the recorder,
followed over WebSocket and Server-Sent Events from the API (docs/live-logs.md)."""

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import websockets
from websockets.exceptions import ConnectionClosed

from services.devstack import DevStack
from tests.e2e.lifecycle import post_job, wait_status

Messages = list[dict[str, Any]]


def ws_url(url: str) -> str:
    return url.replace("http://", "ws://", 1) + "/ws"


async def follow(
    url: str,
    until_text: str | None = None,
    on_message: Callable[[Messages], Awaitable[None]] | None = None,
) -> tuple[Messages, int | None, str | None]:
    """Every message of a WebSocket follower until the server closes it (or, with `until_text`, until that text
    was seen: the client then leaves); with the close code and reason. `on_message` is awaited with the
    messages so far after each one (a test acting mid-stream)."""
    messages: Messages = []
    async with websockets.connect(url, open_timeout=20) as socket:
        try:
            async for raw in socket:
                messages.append(json.loads(raw))
                if on_message is not None:
                    await on_message(messages)
                if until_text is not None and until_text in text_of(messages):
                    break
        except ConnectionClosed:
            pass
    return messages, socket.close_code, socket.close_reason


def follow_now(url: str, until_text: str | None = None) -> tuple[Messages, int | None, str | None]:
    return asyncio.run(asyncio.wait_for(follow(url, until_text), 120))


def text_of(messages: Messages, stream: str | None = None) -> str:
    return "".join(m["text"] for m in messages if m["type"] == "output" and stream in (None, m["stream"]))


def outputs(messages: Messages) -> list[tuple[str, str]]:
    return [(m["stream"], m["text"]) for m in messages if m["type"] == "output"]


def lines(messages: Messages) -> list[tuple[str, str]]:
    """(stream, line) in order: chunks may gather several lines."""
    found = []
    for stream, text in outputs(messages):
        found += [(stream, line) for line in text.splitlines()]
    return found


def sse_events(client: httpx.Client, url: str) -> Messages:
    events: Messages = []
    with client.stream("GET", url, params={"follow": "true"}, timeout=120) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line[len("event: ") :]
            elif line.startswith("data: "):
                message = json.loads(line[len("data: ") :])
                assert message["type"] == kind
                events.append(message)
    return events


def test_lines_arrive_while_the_execution_runs_and_the_socket_closes_with_its_status(client: httpx.Client) -> None:
    job = post_job(client, "bash -c 'for i in 1 2 3; do echo $i; sleep 1; done'")
    status_when_first_line: list[str] = []

    async def note_status(messages: Messages) -> None:
        if text_of(messages).startswith("1\n") and not status_when_first_line:
            status_when_first_line.append(client.get(job["executionUrl"]).json()["execution"]["status"])

    messages, code, reason = asyncio.run(asyncio.wait_for(follow(ws_url(job["executionUrl"]), None, note_status), 120))
    assert status_when_first_line == ["running"]  # the line came live, not after the end
    assert text_of(messages) == "1\n2\n3\n"
    assert messages[0]["type"] == "execution" and messages[0]["executionId"] == job["executionId"]
    assert messages[-1] == {
        "type": "end",
        "executionId": job["executionId"],
        "status": "done",
        "exitCode": 0,
        "error": None,
    }
    assert (code, reason) == (1000, "done")
    # The live output and the final log agree.
    assert client.get(f"{job['executionUrl']}/stdout").text == "1\n2\n3\n"


def test_a_late_joiner_gets_everything_it_missed_once(client: httpx.Client) -> None:
    job = post_job(client, "bash -c 'for i in 1 2 3 4 5; do echo line $i; sleep 0.7; done'")
    wait_status(client, job["executionUrl"], {"running"})
    time.sleep(2)  # lines 1-3 were written before this follower came
    messages, code, reason = follow_now(ws_url(job["executionUrl"]))
    assert [line for _, line in lines(messages)] == [f"line {i}" for i in range(1, 6)]
    assert (code, reason) == (1000, "done")


def test_joining_after_the_end_replays_the_whole_output(client: httpx.Client) -> None:
    job = post_job(client, "bash -c 'echo out; echo err >&2; exit 3'")
    wait_status(client, job["executionUrl"], {"failed"})
    messages, code, reason = follow_now(ws_url(job["executionUrl"]))
    assert text_of(messages, "stdout") == "out\n" and text_of(messages, "stderr") == "err\n"
    assert messages[-1]["status"] == "failed" and messages[-1]["exitCode"] == 3
    assert (code, reason) == (1000, "failed")
    events = sse_events(client, f"{job['executionUrl']}/logs")
    assert next(e["type"] for e in events) == "execution" and events[-1]["type"] == "end"
    assert text_of(events, "stdout") == "out\n" and text_of(events, "stderr") == "err\n"
    only_stderr = sse_events(client, f"{job['executionUrl']}/stderr")
    assert text_of(only_stderr) == "err\n"


def test_stdout_and_stderr_keep_the_order_they_were_written_in(client: httpx.Client) -> None:
    job = post_job(client, "bash -c 'echo o1; sleep 0.3; echo e1 >&2; sleep 0.3; echo o2; sleep 0.3; echo e2 >&2'")
    messages, _, reason = follow_now(ws_url(job["executionUrl"]))
    assert lines(messages) == [("stdout", "o1"), ("stderr", "e1"), ("stdout", "o2"), ("stderr", "e2")]
    assert reason == "done"
    offsets = [m["offset"] for m in messages if m["type"] == "output"]
    assert offsets == sorted(offsets) and offsets[0] == 0


def test_server_sent_events_follow_live_too(client: httpx.Client) -> None:
    job = post_job(client, "bash -c 'for i in 1 2 3; do echo $i; sleep 0.5; done'")
    events = sse_events(client, f"{job['executionUrl']}/logs")
    assert text_of(events) == "1\n2\n3\n"
    assert events[-1]["type"] == "end" and events[-1]["status"] == "done"
    job_events = sse_events(client, f"{job['jobUrl']}/logs")  # the job's latest execution
    assert text_of(job_events) == "1\n2\n3\n" and job_events[-1]["status"] == "done"


def test_fifty_followers_of_one_execution_each_get_all_of_it(client: httpx.Client) -> None:
    job = post_job(client, "bash -c 'for i in $(seq 1 10); do echo line $i; sleep 0.3; done'")

    async def crowd() -> list[tuple[Messages, int | None, str | None]]:
        return await asyncio.gather(*(follow(ws_url(job["executionUrl"])) for _ in range(50)))

    results = asyncio.run(asyncio.wait_for(crowd(), 120))
    expected = "".join(f"line {i}\n" for i in range(1, 11))
    assert [text_of(m) for m, _, _ in results] == [expected] * 50
    assert {(code, reason) for _, code, reason in results} == {(1000, "done")}


def test_a_follower_that_leaves_mid_stream_harms_no_one(client: httpx.Client, stack: DevStack) -> None:
    job = post_job(client, "bash -c 'for i in 1 2 3 4; do echo $i; sleep 0.5; done'")

    async def both() -> tuple[Any, Any]:
        leaver = follow(ws_url(job["executionUrl"]), until_text="1\n")
        stayer = follow(ws_url(job["executionUrl"]))
        return await asyncio.gather(leaver, stayer)

    (left, _, _), (stayed, code, reason) = asyncio.run(asyncio.wait_for(both(), 120))
    assert text_of(left).startswith("1\n") and left[-1]["type"] == "output"
    assert text_of(stayed) == "1\n2\n3\n4\n" and (code, reason) == (1000, "done")
    # A follower that opens and drops the connection at once, then a new one: still all of it.
    with httpx.stream("GET", f"{job['executionUrl']}/logs", params={"follow": "true"}, timeout=30) as response:
        assert response.status_code == 200
    messages, code, _ = follow_now(ws_url(job["executionUrl"]))
    assert text_of(messages) == "1\n2\n3\n4\n" and code == 1000
    assert "Traceback" not in stack.log_tail("api", 20000)


def test_a_job_follower_goes_on_to_the_retry(client: httpx.Client) -> None:
    job = post_job(client, "bash -c 'echo attempt; sleep 0.5; exit 1'", retries=1)
    messages, code, reason = follow_now(ws_url(job["jobUrl"]))
    executions = list(dict.fromkeys(m["executionId"] for m in messages if m["type"] == "execution"))
    assert len(executions) == 2, messages
    assert [m["status"] for m in messages if m["type"] == "end"] == ["failed", "failed"]
    assert text_of(messages) == "attempt\nattempt\n"
    assert (code, reason) == (1000, "failed")


def test_hostile_output_comes_through_as_the_final_log_has_it(client: httpx.Client) -> None:
    command = 'bash -c \'printf "nul:\\0 bad:\\377\\376 end\\n"; printf "\\033[31mred\\r\\n" >&2\''
    job = post_job(client, command)
    messages, _, reason = follow_now(ws_url(job["executionUrl"]))
    assert reason == "done"
    assert text_of(messages, "stdout") == client.get(f"{job['executionUrl']}/stdout").text
    assert "\x00" in text_of(messages, "stdout")
    assert text_of(messages, "stderr") == "\x1b[31mred\r\n"


def test_output_beyond_the_rate_is_skipped_and_counted(client: httpx.Client) -> None:
    # 3 MiB at once: over the default burst (1 MiB) of live output; the final log keeps its end as always.
    job = post_job(client, "bash -c 'head -c 3145728 /dev/zero | tr \"\\0\" x; echo; echo tail-line'")
    messages, _, reason = follow_now(ws_url(job["executionUrl"]))
    assert reason == "done"
    sent = [m for m in messages if m["type"] == "output"]
    skipped = sum(m["skipped"] for m in sent)
    size = sum(len(m["text"].encode()) for m in sent)
    assert skipped > 0
    assert size + skipped == 3145728 + len("\ntail-line\n")  # every byte is either sent or counted
    assert text_of(messages).endswith("tail-line\n")  # the newest output is kept


def test_unknown_or_malformed_ids(client: httpx.Client, stack: DevStack) -> None:
    unknown = f"{stack.url}/tasks/none/jobs/{uuid.uuid4()}/executions/{uuid.uuid4()}"
    messages, code, _ = follow_now(ws_url(unknown))
    assert code == 4404 and messages[-1]["type"] == "error"
    assert client.get(f"{unknown}/logs", params={"follow": "true"}).status_code == 404
    assert client.get(unknown).status_code == 404  # a UUID that is no execution id (not time-based) is unknown too
    assert client.post(f"{unknown}/stop").status_code == 404
    _, code, _ = follow_now(ws_url(f"{stack.url}/tasks/none/jobs/not-a-uuid"))
    assert code == 4400
    assert client.get("/tasks/none/jobs/not-a-uuid/logs", params={"follow": "true"}).status_code == 400


def test_a_runner_and_a_recorder_killed_mid_stream_cost_a_follower_nothing(
    client: httpx.Client, stack: DevStack
) -> None:
    """kill -9 of the runner while its container writes (the restarted runner publishes the output again from
    the start: the follower keeps each offset once), and of the recorder (the follower goes on from Kafka)."""
    job = post_job(client, "bash -c 'for i in $(seq 1 12); do echo line $i; sleep 0.5; done'")
    killed: list[str] = []

    async def kill_after_line_2(messages: Messages) -> None:
        if "line 2\n" in text_of(messages) and not killed:
            killed.append("runner")
            stack.kill("runner")
            stack.kill("recorder")
            await asyncio.sleep(1.5)
            stack.restart("runner")
            stack.restart("recorder")

    messages, code, reason = asyncio.run(
        asyncio.wait_for(follow(ws_url(job["executionUrl"]), None, kill_after_line_2), 180)
    )
    assert killed == ["runner"]
    assert [line for _, line in lines(messages)] == [f"line {i}" for i in range(1, 13)]
    assert (code, reason) == (1000, "done")
    late, _, _ = follow_now(ws_url(job["executionUrl"]))  # and the table has all of it, once
    assert [line for _, line in lines(late)] == [f"line {i}" for i in range(1, 13)]


def test_an_api_process_stops_on_sigterm_with_followers_still_connected(client: httpx.Client, stack: DevStack) -> None:
    from services.devstack import free_port

    job = post_job(client, "sleep 60")
    wait_status(client, job["executionUrl"], {"running"})
    port = free_port()
    stack.start("api", "api-followed", FASTLANE_API_PORT=str(port))
    second = job["executionUrl"].replace(stack.url, f"http://127.0.0.1:{port}")
    eventually_up = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthcheck", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < eventually_up, "the second API did not start"
        time.sleep(0.5)

    async def followers_then_sigterm() -> tuple[int | None, bool]:
        socket = await websockets.connect(ws_url(second), open_timeout=20)
        await socket.recv()  # the execution message: it follows
        async with (
            httpx.AsyncClient(timeout=60) as http,
            http.stream("GET", f"{second}/logs", params={"follow": "true"}) as sse,
        ):
            assert sse.status_code == 200
            lines_read = sse.aiter_lines()
            await anext(lines_read)
            await asyncio.to_thread(stack.terminate, "api-followed", 20)  # raises when it takes longer
            ended = False
            try:
                async for _ in lines_read:
                    pass
                ended = True
            except httpx.HTTPError:
                ended = True  # cut: also an end
        with contextlib.suppress(ConnectionClosed):
            while True:
                await socket.recv()
        return socket.close_code, ended

    code, sse_ended = asyncio.run(asyncio.wait_for(followers_then_sigterm(), 90))
    assert sse_ended
    assert code is not None and code != 1000  # not a final status: the client should reconnect
    client.post(f"{job['jobUrl']}/stop")
