"""The web console in a real browser (Debian's Chromium) against the whole stack, used as a person uses it: a job
made from the form whose lines appear while it runs, a running job stopped from its page, a task found with the
search box, hostile text shown as text, and every page rendered and saved as a screenshot in docs/ui/."""

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from services.devstack import DevStack
from shared.process.settings import Settings
from tests.conftest import TEST_IMAGE
from tests.e2e.browser import (
    button,
    confirm,
    console_errors,
    png_size,
    save_screenshot,
    shown,
    start_chromium,
    text_of,
    wait_for,
)
from tests.e2e.lifecycle import FINAL, post_job, wait_status
from tests.helpers import eventually

USER, PASSWORD, TOKEN = "ops", "correct horse battery staple", "t0ken-for-the-console"
COUNT_TO_THREE = "bash -c 'for i in 1 2 3; do echo $i; sleep 1; done'"
HOSTILE = "<img src=x onerror=window.pwned=1>"


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    driver = start_chromium()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def console(browser: WebDriver, stack: DevStack) -> Iterator[WebDriver]:
    """The browser, checked afterwards for script errors (a broken module shows up only there)."""
    yield browser
    # Chromium also logs each error answer (a 401 asking for credentials, a 400 refusing a form) as a failed
    # load; the pages handle those, so only script errors count here.
    errors = [e for e in console_errors(browser) if "the server responded with a status of" not in e]
    assert not errors, errors


class GuardedApi(DevStack):
    """A second API process on the session's topics and keyspace, with basic auth and a bearer token on."""

    def wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthcheck", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the guarded API did not answer within {timeout}s:\n{self.log_tail('api')}")


@pytest.fixture(scope="module")
def guarded_api(backends: Settings, stack: DevStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with GuardedApi(
        backends.topic_prefix,
        backends.keyspace,
        tmp_path_factory.mktemp("guarded"),
        services=("api",),
        FASTLANE_BASIC_AUTH_USERNAME=USER,
        FASTLANE_BASIC_AUTH_PASSWORD=PASSWORD,
        FASTLANE_BEARER_TOKENS=f'["{TOKEN}"]',
    ) as api:
        yield api.url


def open_page(driver: WebDriver, stack: DevStack, fragment: str) -> None:
    driver.get(f"{stack.url}/ui/#{fragment}")


def log_lines(driver: WebDriver) -> list[str]:
    return text_of(driver, "#log").splitlines()


def status_of(driver: WebDriver, css: str) -> str:
    return text_of(driver, css).strip()


def task_links(driver: WebDriver) -> list[str]:
    return [a.text for a in driver.find_elements(By.CSS_SELECTOR, "table.tasks a.task-link")]


def test_a_job_made_with_the_form_shows_its_lines_while_it_runs_then_done(console: WebDriver, stack: DevStack) -> None:
    task = f"console-live-{uuid.uuid4().hex[:6]}"
    open_page(console, stack, "/new")
    wait_for(console, lambda d: shown(d, "#field-task"), "the new-job form")
    console.find_element(By.ID, "field-task").send_keys(task)
    console.find_element(By.ID, "field-image").send_keys(TEST_IMAGE)
    console.find_element(By.ID, "field-command").send_keys(COUNT_TO_THREE)
    button(console, "Enqueue").click()

    wait_for(console, lambda d: "/executions/" in d.current_url, "the execution's page")
    wait_for(console, lambda d: "1" in log_lines(d), "the first line in the log")
    # Seen live: the execution is still running, and the last line is not written yet.
    assert status_of(console, "#execution-status") not in FINAL
    assert "3" not in log_lines(console)
    wait_for(console, lambda d: "3" in log_lines(d), "the last line in the log")
    wait_for(console, lambda d: status_of(d, "#execution-status") == "done", "the status done")
    assert log_lines(console) == ["1", "2", "3"]
    assert "ended: done" in text_of(console, "#log-state")


def test_a_running_job_is_stopped_from_its_page(console: WebDriver, stack: DevStack, client: httpx.Client) -> None:
    job = post_job(client, "sleep 60", task=f"console-stop-{uuid.uuid4().hex[:6]}")
    wait_status(client, job["executionUrl"], {"running"})
    open_page(console, stack, f"/tasks/{job['taskId']}/jobs/{job['jobId']}")
    wait_for(console, lambda d: status_of(d, "#job-status") == "running", "the job's page with its running execution")

    button(console, "Stop job").click()
    confirm(console, "Stop job")

    wait_for(console, lambda d: "Stop requested" in text_of(d, ".notice-ok"), "the API's answer")
    wait_for(console, lambda d: status_of(d, "#job-status") == "stopped", "the status stopped")
    assert client.get(job["executionUrl"]).json()["execution"]["status"] == "stopped"


def test_a_task_is_found_with_the_search_box(console: WebDriver, stack: DevStack, client: httpx.Client) -> None:
    words = {name: f"{name}{uuid.uuid4().hex[:6]}" for name in ("kiwi", "plum")}
    tasks = {name: f"console-{word}-search" for name, word in words.items()}
    for task in tasks.values():
        post_job(client, "true", task=task)
    listed = lambda: set(tasks.values()) <= {t["taskId"] for t in client.get("/tasks").json()["items"]}  # noqa: E731
    eventually(listed, timeout=60, what="both tasks listed by the API")
    open_page(console, stack, "/tasks")
    wait_for(console, lambda d: set(tasks.values()) <= set(task_links(d)), "both tasks in the list")

    box = console.find_element(By.CSS_SELECTOR, "form.search input")
    box.send_keys(words["kiwi"], Keys.ENTER)

    wait_for(console, lambda d: task_links(d) == [tasks["kiwi"]], "only the matching task")
    assert "/search?query=" in console.current_url
    assert "1 task" in text_of(console, ".page-of")


def test_hostile_text_is_shown_as_text(console: WebDriver, stack: DevStack, client: httpx.Client) -> None:
    command = f"echo '{HOSTILE}' '<script>window.pwned=2</script>'"
    job = post_job(client, command, task=f"console-hostile-{uuid.uuid4().hex[:6]}", envs={"NOTE": HOSTILE})
    wait_status(client, job["executionUrl"], FINAL)
    pages = {
        "task": f"/tasks/{job['taskId']}",
        "job": f"/tasks/{job['taskId']}/jobs/{job['jobId']}",
        "execution": f"/tasks/{job['taskId']}/jobs/{job['jobId']}/executions/{job['executionId']}",
    }
    for name, fragment in pages.items():
        open_page(console, stack, fragment)
        wait_for(
            console, lambda d: HOSTILE in d.find_element(By.TAG_NAME, "main").text, f"the command on the {name} page"
        )
        assert not console.find_elements(By.CSS_SELECTOR, "main img, main script"), name
        assert console.execute_script("return window.pwned") is None, name
    wait_for(console, lambda d: "<script>window.pwned=2</script>" in text_of(d, "#log"), "the output, as text")
    assert not console.find_elements(By.CSS_SELECTOR, "#log *:not(span)")


def sign_in(driver: WebDriver, **fields: str) -> None:
    dialog = wait_for(driver, lambda d: shown(d, "dialog.sign-in[open]"), "the sign-in form")[0]
    for name, value in fields.items():
        dialog.find_element(By.NAME, name).send_keys(value)
    button(driver, "Sign in", within="dialog[@open]").click()


def test_the_console_asks_for_credentials_and_keeps_them_in_the_tab_only(
    console: WebDriver, guarded_api: str, client: httpx.Client
) -> None:
    post_job(client, "true", task=f"console-guarded-{uuid.uuid4().hex[:6]}")
    page = httpx.get(f"{guarded_api}/ui/")
    assert page.status_code == 200, "the console's page is open: it holds no data"
    assert httpx.get(f"{guarded_api}/tasks").status_code == 401
    console.get(f"{guarded_api}/ui/#/tasks")

    sign_in(console, username=USER, password="wrong")
    wait_for(console, lambda d: "refused" in text_of(d, "dialog.sign-in[open]"), "the credentials refused")
    sign_in(console, username=USER, password=PASSWORD)
    wait_for(console, lambda d: task_links(d), "the tasks, once signed in")
    stored = console.execute_script("return sessionStorage.getItem('fastlane.authorization')")
    assert stored.startswith("Basic ")
    assert console.execute_script("return localStorage.length") == 0
    assert PASSWORD not in console.page_source

    button(console, "Sign out", within="header").click()
    sign_in(console, token=TOKEN)
    wait_for(console, lambda d: task_links(d), "the tasks, with the token")
    assert console.execute_script("return sessionStorage.getItem('fastlane.authorization')") == f"Bearer {TOKEN}"
    console.execute_script("sessionStorage.clear()")


def test_a_host_is_put_back_into_rotation_from_the_status_page(
    console: WebDriver, stack: DevStack, client: httpx.Client
) -> None:
    host = f"ghost-{uuid.uuid4().hex[:6]}:2375"  # no runner has it: blacklisting it takes nothing from the tests
    assert client.post("/docker-executor/blacklist", json={"host": host}).status_code == 200
    row = f"table.hosts tr[data-host='{host}']"
    open_page(console, stack, "/status")
    wait_for(console, lambda d: "Un-blacklist" in text_of(d, row), "the blacklisted host")

    console.find_element(By.CSS_SELECTOR, f"{row} button").click()
    confirm(console, "Un-blacklist")

    wait_for(console, lambda d: "back in rotation" in text_of(d, ".notice-ok"), "the API's answer")
    wait_for(console, lambda d: not d.find_elements(By.CSS_SELECTOR, row), "the host gone from the list")


def test_the_form_shows_the_apis_refusal_as_text(console: WebDriver, stack: DevStack) -> None:
    open_page(console, stack, "/new")
    wait_for(console, lambda d: shown(d, "#field-task"), "the new-job form")
    console.find_element(By.ID, "field-task").send_keys(f"console-refused-{uuid.uuid4().hex[:6]}")
    console.find_element(By.ID, "field-image").send_keys(TEST_IMAGE)
    console.find_element(By.ID, "field-command").send_keys("true")
    console.find_element(By.CSS_SELECTOR, "input[name=schedule][value=cron]").click()
    console.find_element(By.ID, "field-cron").send_keys(HOSTILE)
    button(console, "Enqueue").click()

    refusal = wait_for(console, lambda d: text_of(d, "#form-result .error-box"), "the API's message")
    assert "400" in refusal and f"'{HOSTILE}' is not a 5-field cron expression" in refusal
    assert not console.find_elements(By.CSS_SELECTOR, "main img")
    assert console.execute_script("return window.pwned") is None
    assert console.current_url.endswith("#/new"), "a refused job leaves the form as it was"


def test_each_page_renders_and_is_saved_as_a_screenshot(
    console: WebDriver, stack: DevStack, client: httpx.Client
) -> None:
    task = "nightly-report"
    post_job(client, "true", task=task, cron="0 3 * * *", retries=2, timeout=600)
    command = (
        'bash -c \'for i in 1 2 3 4 5; do echo "rendering page $i of 5"; sleep 0.3; done; '
        'echo "warning: 2 pages had no data" >&2; echo "report written to /out/report.pdf"\''
    )
    job = post_job(client, command, task=task, envs={"REPORT_DAY": "2026-11-28", "API_KEY": "s3cr3t"}, retries=1)
    sleeper = post_job(client, "sleep 30", task="invoices-send")
    wait_status(client, job["executionUrl"], FINAL)
    wait_status(client, sleeper["executionUrl"], {"running"})
    job_page = f"/tasks/{task}/jobs/{job['jobId']}"
    pages = {
        "tasks": ("/tasks", lambda d: task in task_links(d)),
        "task": (f"/tasks/{task}", lambda d: len(shown(d, "table.jobs .badge")) == 1 and "cron" in d.page_source),
        "job": (job_page, lambda d: status_of(d, "#job-status") == "done" and "***" in text_of(d, "main")),
        "execution": (
            f"{job_page}/executions/{job['executionId']}",
            lambda d: "ended: done" in text_of(d, "#log-state") and "warning" in text_of(d, "#log .stderr"),
        ),
        "status": ("/status", lambda d: shown(d, "table.hosts tr[data-host]") and shown(d, "table.running tr")),
        "new": (f"/new?task={task}&image={TEST_IMAGE}", lambda d: TEST_IMAGE in text_of(d, "#request-preview")),
    }
    for page, (fragment, ready) in pages.items():
        open_page(console, stack, fragment)
        wait_for(console, ready, f"the {page} page")
        path = save_screenshot(console, page)
        assert png_size(path) == (1280, 900), page
        assert path.stat().st_size > 10_000, f"{path} is too small to show a page"
    assert client.post(f"{sleeper['jobUrl']}/stop").status_code == 200
