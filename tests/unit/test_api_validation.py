from datetime import UTC, datetime, timedelta

import pytest

from services.api.errors import BadRequest, http_status
from services.api.ids import check_task_id
from services.api.schemas import parse_job_spec

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_a_minimal_job_parses() -> None:
    spec = parse_job_spec(b'{"image": "busybox", "command": "echo hi"}')
    assert spec.image == "busybox"
    assert spec.envs == {}
    definition = spec.definition(NOW, 1800)
    assert definition.command == "echo hi"
    assert definition.runs_now


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{nope", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"command": "echo"}', "image: is required"),
        (b'{"image": "busybox"}', "command: is required"),
        (b'{"image": 3, "command": "echo"}', "image"),
        (b'{"image": "busybox", "command": ""}', "command"),
        (b'{"image": "busybox", "command": "   "}', "command"),
        (b'{"image": "busybox", "command": "echo \'unclosed"}', "cannot be split"),
        (b'{"image": "bad image", "command": "echo"}', "without spaces"),
        (b'{"image": "busybox", "command": "echo", "envs": ["A"]}', "envs"),
        (b'{"image": "busybox", "command": "echo", "envs": {"A": 1}}', "envs.A"),
        (b'{"image": "busybox", "command": "echo", "metadata": "x"}', "metadata"),
        (b'{"image": "i", "command": "c", "webhooks": {"starts": [{"url": "ftp://h/x"}]}}', "http or https URL"),
        (b'{"image": "i", "command": "c", "webhooks": {"starts": [{"headers": {}}]}}', "webhooks.starts.0.url"),
        (b'{"image": "i", "command": "c", "webhooks": {"begins": []}}', "webhooks.begins"),
        (b'{"image": "i", "command": "c", "webhooks": {"fails": {"url": "http://h"}}}', "webhooks.fails"),
        (b'{"image": "i", "command": "c", "webhooks": {"fails": [{"url": "http://h", "retries": -1}]}}', "retries"),
        (
            b'{"image": "i", "command": "c", "webhooks": {"fails": [{"url": "http://h", "headers": {"a b": "1"}}]}}',
            "not an HTTP header name",
        ),
        (b'{"image": "i", "command": "c", "webhooks": {"fails": [{"url": "http://h", "verb": "PUT"}]}}', "verb"),
        (b'{"image": "i", "command": "c", "notify": {"fails": ["not-an-address"]}}', "is not an e-mail address"),
        (b'{"image": "i", "command": "c", "notify": {"starts": ["a@b.io"]}}', "notify.starts"),
        (b'{"image": "i", "command": "c", "notify": {"fails": "a@b.io"}}', "notify.fails"),
        (b'{"image": "i", "command": "c", "startIn": "5 minutes"}', "not a duration"),
        (b'{"image": "i", "command": "c", "additionalDNSEntries": {"db": "not-an-ip"}}', "is not an IP address"),
        (b'{"image": "i", "command": "c", "additionalDNSEntries": {"bad host": "10.0.0.1"}}', "is not a host name"),
        (b'{"image": "i", "command": "c", "additionalDNSEntries": ["x"]}', "additionalDNSEntries"),
        (b'{"image": "i", "command": "c", "resources": {"cpus": 0}}', "resources.cpus"),
        (b'{"image": "i", "command": "c", "resources": {"memoryMB": 1}}', "resources.memoryMB"),
        (b'{"image": "i", "command": "c", "resources": {"gpus": 1}}', "resources.gpus"),
        (b'{"image": "i", "command": "c", "startIn": 5}', "startIn"),
        (b'{"image": "i", "command": "c", "startAt": "tomorrow"}', "startAt"),
        (b'{"image": "i", "command": "c", "cron": "* * *"}', "5-field cron"),
        (b'{"image": "i", "command": "c", "cron": "* * * * *", "cronTimezone": "Nowhere/Town"}', "IANA"),
        (b'{"image": "i", "command": "c", "cron": "* * * * *", "startIn": "5m"}', "at most one of"),
        (b'{"image": "i", "command": "c", "startAt": 1, "startIn": "5m"}', "at most one of"),
        (b'{"image": "i", "command": "c", "retries": -1}', "retries"),
        (b'{"image": "i", "command": "c", "retries": "3"}', "retries"),
        (b'{"image": "i", "command": "c", "retries": true}', "retries"),
        (b'{"image": "i", "command": "c", "retries": 1.5}', "retries"),
        (b'{"image": "i", "command": "c", "timeout": 0}', "timeout"),
        (b'{"image": "i", "command": "c", "timeout": "10"}', "timeout"),
        (b'{"image": "i", "command": "c", "expiration": "soon"}', "expiration"),
        (b'{"image": "i", "command": "c", "retryBackoff": {"minMs": 10, "factor": 2}}', "retryBackoff.maxMs"),
        (b'{"image": "i", "command": "c", "retryBackoff": {"minMs": 10, "factor": 2, "maxMs": 5}}', "maxMs must be"),
        (b'{"image": "i", "command": "c", "retryBackoff": {"minMs": 10, "factor": 0.5, "maxMs": 50}}', "factor"),
        (b'{"image": "i", "command": "c", "concurrencyPolicy": "Sometimes"}', "concurrencyPolicy"),
    ],
)
def test_bad_bodies_say_what_is_wrong(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_job_spec(body)
    assert message in info.value.message
    assert http_status(info.value) == 400


@pytest.mark.parametrize("task_id", ["hello-world", "a", "billing.send_invoices:v2", "X" * 200])
def test_good_task_ids(task_id: str) -> None:
    assert check_task_id(task_id) == task_id


@pytest.mark.parametrize("task_id", ["", "-starts-with-dash", "has space", "slash/inside", "é", "X" * 201])
def test_bad_task_ids(task_id: str) -> None:
    with pytest.raises(BadRequest):
        check_task_id(task_id)


def test_webhooks_and_mails_reach_the_definition() -> None:
    body = (
        b'{"image": "i", "command": "c", "webhooks": {"fails": [{"url": "https://h.io/x", "headers": {"X-A": "1"},'
        b' "retries": 2}], "finishes": [{"url": "http://10.0.0.1/y"}]}, "notify": {"succeeds": ["a@b.io"]}}'
    )
    definition = parse_job_spec(body).definition(NOW, 1800)
    [fails] = definition.webhooks["fails"]
    assert (fails.url, fails.headers, fails.retries) == ("https://h.io/x", {"X-A": "1"}, 2)
    assert definition.webhooks["finishes"][0].retries is None
    assert definition.notify == {"succeeds": ["a@b.io"]}
    with pytest.raises(BadRequest) as info:
        parse_job_spec(body, refuse_private=True)
    assert "'http://10.0.0.1/y' is not a public address" in info.value.message


def test_start_in_counts_from_the_request() -> None:
    d = parse_job_spec(b'{"image": "i", "command": "c", "startIn": "2h30m50s"}').definition(NOW, 1800)
    assert d.start_at == NOW + timedelta(hours=2, minutes=30, seconds=50)
    assert not d.runs_now


def test_start_at_and_expiration_are_unix_seconds() -> None:
    d = parse_job_spec(b'{"image": "i", "command": "c", "startAt": 1800000000, "expiration": 1800000060.5}').definition(
        NOW, 1800
    )
    assert d.start_at == datetime.fromtimestamp(1800000000, UTC)
    assert d.expiration == datetime.fromtimestamp(1800000060.5, UTC)


def test_cron_with_policies() -> None:
    body = b'{"image": "i", "command": "c", "cron": "*/5 * * * *", "cronTimezone": "America/Sao_Paulo",'
    body += b' "concurrencyPolicy": "Forbid", "catchUp": false, "retries": 2,'
    body += b' "retryBackoff": {"minMs": 100, "factor": 1.5, "maxMs": 1000}}'
    d = parse_job_spec(body).definition(NOW, 1800)
    assert (d.cron, d.cron_timezone, d.concurrency_policy, d.catch_up, d.retries) == (
        "*/5 * * * *",
        "America/Sao_Paulo",
        "Forbid",
        False,
        2,
    )
    assert d.retry_backoff is not None and d.retry_backoff.factor == 1.5


def test_timeouts_are_capped_by_the_hard_limit() -> None:
    assert parse_job_spec(b'{"image": "i", "command": "c", "timeout": 99999}').definition(NOW, 1800).timeout_s == 1800
    assert parse_job_spec(b'{"image": "i", "command": "c", "timeout": 2.5}').definition(NOW, 1800).timeout_s == 3


def test_extra_hosts_and_resources_reach_the_definition() -> None:
    spec = parse_job_spec(
        b'{"image": "i", "command": "c", "additionalDNSEntries": {"db.internal": "10.1.2.3"},'
        b' "resources": {"cpus": 0.5, "memoryMB": 256}}'
    )
    definition = spec.definition(NOW, 1800)
    assert definition.extra_hosts == {"db.internal": "10.1.2.3"}
    assert definition.resources is not None
    assert (definition.resources.cpus, definition.resources.memory_mb) == (0.5, 256)
