"""Notifications: what is delivered for which event, ids, backoff, signature, payload and target checks."""

import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.notifier.plan import event_names, plan, signature, webhook_body
from services.notifier.send import mail_message
from shared.contract.events import ExecutionFinished, ExecutionStarted, JobDefinition, Webhook
from shared.domain.addresses import is_private, literal_private, resolves_private, url_problem
from shared.domain.links import Links
from shared.domain.schedule import backoff_delay
from shared.process.settings import NotifierSettings

LINKS = Links("http://fl.example:10000/")
IDS = {"task_id": "t1", "job_id": uuid.uuid4(), "execution_id": uuid.uuid1()}
DEFINITION = JobDefinition(
    image="busybox",
    command="true",
    envs={"DB_PASSWORD": "hunter2", "MODE": "fast"},
    metadata={"team": "a"},
    webhooks={
        "starts": [Webhook(url="http://h/s")],
        "succeeds": [Webhook(url="http://h/ok", headers={"X-T": "1"}, retries=5)],
        "fails": [Webhook(url="http://h/ko")],
        "finishes": [Webhook(url="http://h/f1"), Webhook(url="http://h/f2", retries=0)],
    },
    notify={"succeeds": ["a@x.io"], "fails": ["b@x.io"], "finishes": ["a@x.io", "c@x.io"]},
)


def finished(status: str, exit_code: int | None = None) -> ExecutionFinished:
    return ExecutionFinished(**IDS, status=status, exit_code=exit_code, host="h1")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "names"),
    [
        ("done", ["succeeds", "finishes"]),
        ("failed", ["fails", "finishes"]),
        ("timedout", ["fails", "finishes"]),
        ("stopped", ["finishes"]),
        ("expired", ["finishes"]),
    ],
)
def test_which_events_an_end_fires(status: str, names: list[str]) -> None:
    assert event_names(finished(status)) == names


def test_a_start_fires_starts_only_and_no_mail() -> None:
    deliveries = plan(ExecutionStarted(**IDS, host="h1", container_id="c"), DEFINITION, 2, LINKS, ["password"], 3, 4)
    assert [(d.channel, d.event, d.url) for d in deliveries] == [("webhook", "starts", "http://h/s")]
    assert deliveries[0].payload["execution"]["status"] == "running"
    assert deliveries[0].partition == 2


def test_a_success_plans_its_webhooks_and_mails_with_retries_and_headers() -> None:
    deliveries = plan(finished("done", 0), DEFINITION, 0, LINKS, ["password"], 3, 4)
    found = [(d.channel, d.event, d.target, d.retries, d.headers) for d in deliveries]
    assert found == [
        ("webhook", "succeeds", "http://h/ok", 5, {"X-T": "1"}),
        ("mail", "succeeds", "a@x.io", 4, {}),
        ("webhook", "finishes", "http://h/f1", 3, {}),
        ("webhook", "finishes", "http://h/f2", 0, {}),
        ("mail", "finishes", "a@x.io, c@x.io", 4, {}),
    ]
    assert len({d.delivery_id for d in deliveries}) == 5


def test_delivery_ids_are_the_same_whenever_the_event_comes_again() -> None:
    first = plan(finished("failed", 2), DEFINITION, 0, LINKS, [], 3, 3)
    again = plan(finished("failed", 2), DEFINITION, 0, LINKS, [], 3, 3)  # another event_id, same execution
    assert [d.delivery_id for d in first] == [d.delivery_id for d in again]


def test_the_payload_redacts_envs_and_links_to_the_api() -> None:
    [d, *_] = plan(finished("failed", 2), DEFINITION, 0, LINKS, ["password"], 3, 3)
    job, execution = d.payload["job"], d.payload["execution"]
    assert job["envs"] == {"DB_PASSWORD": "***", "MODE": "fast"}
    assert job["metadata"] == {"custom": {"team": "a"}}
    url = f"http://fl.example:10000/tasks/t1/jobs/{IDS['job_id']}/executions/{IDS['execution_id']}"
    assert (execution["url"], execution["logsUrl"]) == (url, f"{url}/logs")
    assert (execution["status"], execution["exitCode"], execution["host"]) == ("failed", 2, "h1")
    assert "hunter2" not in json.dumps(d.payload)


def test_the_body_carries_the_delivery_and_the_signature_is_an_hmac_of_it() -> None:
    [d, *_] = plan(finished("done", 0), DEFINITION, 0, LINKS, [], 3, 3)
    at = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    body = webhook_body(d.model_copy(update={"attempts": 2}), at)
    doc = json.loads(body)
    assert doc["event"] == "succeeds"
    assert doc["delivery"] == {"id": str(d.delivery_id), "attempt": 3, "timestamp": int(at.timestamp())}
    assert signature("k", body) == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert signature("k", body) != signature("other", body)


def test_backoff_grows_by_the_factor_up_to_the_maximum() -> None:
    policy = NotifierSettings(notify_backoff_min_ms=500, notify_backoff_factor=2.0, notify_backoff_max_ms=3000)
    pauses = [backoff_delay(n, policy.notify_backoff) for n in range(1, 6)]
    assert pauses == [timedelta(milliseconds=ms) for ms in (500, 1000, 2000, 3000, 3000)]


def test_a_mail_has_text_html_recipients_and_the_logs_link() -> None:
    [d] = [d for d in plan(finished("done", 0), DEFINITION, 0, LINKS, [], 3, 3) if d.event == "finishes"][-1:]
    mail = mail_message(d, "fastlane@x.io")
    assert (mail["To"], mail["From"]) == ("a@x.io, c@x.io", "fastlane@x.io")
    text = mail.get_body(preferencelist=("plain",))
    html = mail.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    assert d.payload["execution"]["logsUrl"] in text.get_content()  # type: ignore[attr-defined]
    assert f'href="{d.payload["execution"]["logsUrl"]}"' in html.get_content()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://hooks.example.com/x?y=1", None),
        ("http://127.0.0.1:8080/h", None),
        ("ftp://example.com/x", "must be an http or https URL"),
        ("example.com/x", "must be an http or https URL"),
        ("http:///nohost", "has no host"),
        ("http://example.com:99999/", "is not a URL"),
        ("http://exa mple.com/", "must not contain spaces"),
    ],
)
def test_webhook_urls(url: str, problem: str | None) -> None:
    found = url_problem(url)
    assert (found is None) if problem is None else (found is not None and problem in found)


@pytest.mark.parametrize(
    ("address", "private"),
    [
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("192.168.0.1", True),
        ("169.254.169.254", True),
        ("::1", True),
        ("::ffff:10.0.0.1", True),
        ("0.0.0.0", True),
        ("8.8.8.8", False),
        ("2606:4700:4700::1111", False),
    ],
)
def test_private_addresses(address: str, private: bool) -> None:
    assert is_private(address) is private


def test_literal_and_resolved_private_hosts() -> None:
    assert literal_private("http://10.0.0.5/x") and literal_private("http://localhost:8080/")
    assert not literal_private("http://hooks.example.com/") and not literal_private("http://8.8.8.8/")
    assert resolves_private("http://localhost:9/") in ("127.0.0.1", "::1")
    assert resolves_private("http://8.8.8.8/") is None
