"""Headless Chromium for the browser tests: one browser for the whole session, a `page` per test.

Chromium and chromedriver come from Debian (`chromium`, `chromium-driver`; `.ci/browser-deps` installs them
with the `selenium` client), so nothing is downloaded at test time and the driver always matches the
browser. Where they are missing the tests are skipped with the command that installs them (the
`chromium` and `chromedriver` fixtures of tests/conftest.py); CI installs them and runs these tests.

`page.shoot(name)` saves a full-page PNG as `<test>-<name>.png` in the `screenshots` folder.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

WIDTH, MIN_HEIGHT, MAX_HEIGHT = 1280, 900, 4000


@pytest.fixture(scope="session")
def browser(chromium: str, chromedriver: str, webdriver: Any) -> Iterator[Any]:
    """A headless Chromium driven by chromedriver (`selenium.webdriver.Chrome`)."""
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    options.add_argument(f"--window-size={WIDTH},{MIN_HEIGHT}")
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@dataclass
class Page:
    """The session's browser, pointed at one server, saving screenshots named after the test."""

    driver: Any
    base_url: str
    test_name: str
    screenshots: Path

    def open(self, path: str) -> Page:
        """Load `base_url + path` and wait for it (selenium's `get` returns once the page has loaded)."""
        self.driver.get(self.base_url + path)
        return self

    @property
    def title(self) -> str:
        return str(self.driver.title)

    def find(self, css: str) -> Any:
        """The first element matching `css` (NoSuchElementException otherwise)."""
        return self.driver.find_element("css selector", css)

    def follow(self, css: str) -> Page:
        """Click the link or button matching `css` and wait until the page it leads to has loaded.

        A click returns before the browser navigates (a form's POST and its redirect above all), so what is
        read right after it may still be the old page. The wait is on the address and the new document's
        `readyState`; a question asked of the driver mid-navigation may fail, and is asked again.
        """
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.support.wait import WebDriverWait

        before = self.driver.current_url
        self.find(css).click()

        def arrived(driver: Any) -> bool:
            left = driver.current_url != before
            return left and driver.execute_script("return document.readyState") == "complete"

        WebDriverWait(self.driver, 30, ignored_exceptions=(WebDriverException,)).until(arrived)
        return self

    def find_all(self, css: str) -> list[Any]:
        return list(self.driver.find_elements("css selector", css))

    def text(self, css: str = "body") -> str:
        """What a user reads in the element: its rendered, visible text."""
        return str(self.find(css).text)

    def shoot(self, name: str) -> Path:
        """Save the whole page (not only the window) as a PNG and return its path."""
        layout = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        height = min(max(int(layout["cssContentSize"]["height"]), MIN_HEIGHT), MAX_HEIGHT)
        metrics = {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False}
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
        path = self.screenshots / f"{self.test_name}-{name}.png"
        try:
            assert self.driver.save_screenshot(str(path)), f"Chromium saved no screenshot at {path}"
        finally:
            self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        return path


@pytest.fixture
def page(browser: Any, screenshots: Path, request: pytest.FixtureRequest) -> Page:
    """A `Page` on hubsim (the session's `hubsim` fixture); other servers: `Page(browser, url, name, …)`."""
    hubsim = request.getfixturevalue("hubsim")
    return Page(browser, hubsim.url, re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name), screenshots)
