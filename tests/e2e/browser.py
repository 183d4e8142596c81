"""Debian's Chromium driven through Selenium and Debian's chromedriver (deploy/scripts/browser.sh installs both;
no browser is downloaded), and what a test does with it: open a console page, wait for what a person waits
for, read what is shown, save a screenshot."""

import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WIDTH, HEIGHT = 1280, 900
SCREENSHOTS = ROOT / "docs" / "ui"
# Things that happen (a container starts, a line is written, a status is recorded) get this long.
PATIENCE = 60.0

T = TypeVar("T")


def start_chromium() -> WebDriver:
    """Headless Chromium, sized like the screenshots; fails (no skip) when Chromium is not installed."""
    assert Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(), (
        f"{CHROMIUM} or {CHROMEDRIVER} is missing: run deploy/scripts/browser.sh (make provision runs it)"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={WIDTH},{HEIGHT}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    # The window's size includes room for a toolbar even headless: the page itself gets exactly 1280x900.
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False},
    )
    return driver


def wait_for(driver: WebDriver, probe: Callable[[WebDriver], T], what: str, timeout: float = PATIENCE) -> T:
    """What `probe` returns once it is truthy; a page re-rendered under the probe is probed again."""

    def tolerant(d: WebDriver) -> T | bool:
        try:
            return probe(d)
        except StaleElementReferenceException:
            return False

    try:
        result = cast(T, WebDriverWait(driver, timeout, poll_frequency=0.1).until(tolerant))
    except TimeoutException:
        page = text_of(driver, "body")[-3000:]
        raise AssertionError(
            f"timed out after {timeout:g}s waiting for {what} at {driver.current_url}:\n{page}"
        ) from None
    return result


def shown(driver: WebDriver, css: str) -> list[WebElement]:
    return [e for e in driver.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()]


def text_of(driver: WebDriver, css: str) -> str:
    """The text of the first element matching `css`, or "" when there is none."""
    found = driver.find_elements(By.CSS_SELECTOR, css)
    return found[0].text if found else ""


def button(driver: WebDriver, label: str, within: str = "main") -> WebElement:
    """The visible button labelled `label` (waits for it)."""
    xpath = f"//{within}//button[normalize-space(.)='{label}']"
    found = wait_for(
        driver,
        lambda d: next((b for b in d.find_elements(By.XPATH, xpath) if b.is_displayed() and b.is_enabled()), None),
        f"a button {label!r}",
    )
    assert found is not None
    return found


def confirm(driver: WebDriver, label: str) -> None:
    """Answer the console's confirmation dialog by clicking `label`."""
    button(driver, label, within="dialog[@open]").click()


def console_errors(driver: WebDriver) -> list[str]:
    """Errors the page's scripts logged (a failed module import shows up here)."""
    entries: list[dict[str, Any]] = cast(Any, driver).get_log("browser")  # Chrome's driver has get_log
    return [e["message"] for e in entries if e["level"] == "SEVERE"]


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's header; fails when the file is not a PNG."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def save_screenshot(driver: WebDriver, page: str) -> Path:
    """docs/ui/<page>.png, the viewport as a person sees it at 1280x900."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{page}.png"
    driver.execute_script("window.scrollTo(0, 0)")
    assert driver.save_screenshot(str(path)), f"no screenshot of {page}"
    return path
