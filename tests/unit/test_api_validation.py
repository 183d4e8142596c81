import pytest

from services.api.errors import BadRequest
from services.api.schemas import check_task_id, parse_job_spec


def test_a_minimal_job_parses() -> None:
    spec = parse_job_spec(b'{"image": "busybox", "command": "echo hi"}')
    assert spec.image == "busybox"
    assert spec.envs == {}
    assert spec.definition().command == "echo hi"


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
        (b'{"image": "busybox", "command": "echo", "cron": "* * * * *"}', "not supported yet by this server: cron"),
    ],
)
def test_bad_bodies_say_what_is_wrong(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_job_spec(body)
    assert message in info.value.message
    assert info.value.status == 400


@pytest.mark.parametrize("task_id", ["hello-world", "a", "billing.send_invoices:v2", "X" * 200])
def test_good_task_ids(task_id: str) -> None:
    assert check_task_id(task_id) == task_id


@pytest.mark.parametrize("task_id", ["", "-starts-with-dash", "has space", "slash/inside", "é", "X" * 201])
def test_bad_task_ids(task_id: str) -> None:
    with pytest.raises(BadRequest):
        check_task_id(task_id)
