"""The status page in a real browser: Debian's headless Chromium, driven over WebDriver.

`qsysd serve` runs as a subprocess with token authentication, over the emulator on loopback.
The browser signs in with a viewer token, shows the Core, shows a write another client made
through the API with its principal, and shows a value changed on the Core itself arrive over
the event stream.

Set ``QSYSD_STATUS_SCREENSHOT=docs/images/status-page.png`` to save the page as the docs show
it (see docs/http-api.md#status-page).
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from _services import require_service
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait
from test_access_serve import token_cli
from test_http_serve import WAIT, http_daemon, write_config

from qsysd.emulator import demo_design, serve_emulator

PAGE_HOST = "status.test"
#: The flags this machine's Chromium needs headless: no sandbox as root, no GPU, and no
#: background connections (the network is closed, so each would fail).
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1280,900",
    # The page under a name that is no loopback name, as on an appliance: same-origin GETs carry
    # no Origin header, so http.allowed_hosts is all the page needs.
    f"--host-resolver-rules=MAP {PAGE_HOST} 127.0.0.1",
)  # fmt: skip
HOW = "apt-get install chromium chromium-driver"


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    chromium = require_service("chromium", how=HOW)
    chromedriver = require_service("chromedriver", how=HOW)
    options = Options()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    # The console, to check that the page's own policy blocks nothing the page needs.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with tempfile.TemporaryDirectory(prefix="qsysd-chromium-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        # Both paths are given, so selenium never looks for (or downloads) a browser itself.
        driver = webdriver.Chrome(options=options, service=Service(chromedriver))
        try:
            yield driver
        finally:
            driver.quit()


async def in_browser(call: Callable[..., Any], *args: Any) -> Any:
    """A blocking WebDriver call, off the trio thread."""
    return await trio.to_thread.run_sync(functools.partial(call, *args))


async def wait_text(driver: webdriver.Chrome, selector: str, *texts: str) -> str:
    """Wait until an element matching ``selector`` shows every one of ``texts``."""

    def shown(d: webdriver.Chrome) -> str | bool:
        for element in d.find_elements(By.CSS_SELECTOR, selector):
            if element.is_displayed() and all(t in element.text for t in texts):
                return str(element.text)
        return False

    # The page redraws its tables on every refresh: an element found may be gone a moment later.
    waiting = WebDriverWait(
        driver, WAIT, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
    )
    try:
        return str(await in_browser(waiting.until, shown))
    except TimeoutException:
        seen = driver.execute_script(
            "return Array.from(document.querySelectorAll(arguments[0]), e => e.innerText)",
            selector,
        )
        raise AssertionError(f"{selector} never showed {texts}; it shows {seen}") from None


async def set_on_the_core(port: int, component: str, control: str, value: float) -> None:
    """Another QRC client sets a control on the Core itself (NUL-framed JSON-RPC over TCP)."""
    params = {"Name": component, "Controls": [{"Name": control, "Value": value}]}
    request = {"jsonrpc": "2.0", "id": 1, "method": "Component.Set", "params": params}
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(json.dumps(request).encode() + b"\0")
        buffer = b""
        while True:
            *frames, buffer = buffer.split(b"\0")
            for frame in frames:
                reply = json.loads(frame)
                if reply.get("id") == 1:
                    assert "result" in reply, reply
                    return
            chunk = await stream.receive_some(65536)
            assert chunk, "the Core closed the connection"
            buffer += chunk


async def test_the_page_shows_the_core_the_writes_and_live_values(
    tmp_path: Path, browser: webdriver.Chrome
) -> None:
    with trio.fail_after(WAIT * 4):
        async with serve_emulator(demo_design()) as emulator:
            http = f'allowed_hosts = ["{PAGE_HOST}:*"]\n'
            config = write_config(tmp_path, emulator, http=http, auth='mode = "token"\n')
            viewer = token_cli(config, "create", "--name", "wall-panel", "--role", "viewer")
            operator = token_cli(config, "create", "--name", "automation", "--role", "operator")
            assert viewer.returncode == 0 and operator.returncode == 0, viewer.stderr
            viewer_token, operator_token = viewer.stdout.strip(), operator.stdout.strip()
            async with (
                http_daemon(config) as (_, logs, base),
                httpx.AsyncClient(base_url=base, timeout=WAIT) as client,
            ):
                driver = browser
                await in_browser(driver.get, base.replace("127.0.0.1", PAGE_HOST) + "/")
                # No token yet: the page asks for one; a wrong one is refused in words.
                await wait_text(driver, "#sign-in", "API token")
                field = driver.find_element(By.ID, "token")
                await in_browser(field.send_keys, "qsysd_not-a-token")
                await in_browser(driver.find_element(By.CSS_SELECTOR, "#sign-in button").click)
                await wait_text(driver, "#sign-in-error", "token")
                await in_browser(field.send_keys, viewer_token)
                await in_browser(driver.find_element(By.CSS_SELECTOR, "#sign-in button").click)

                # The Core's state.
                row = '#cores tr[data-core="venue"]'
                await wait_text(driver, f"{row} .link", "connected")
                await wait_text(driver, f"{row} .design", demo_design().name)
                await wait_text(driver, f"{row} .breaker", "closed")
                await wait_text(driver, f"{row} .recovery", "up since", "0 reconnects")
                await wait_text(driver, "#who", "wall-panel (viewer)")

                # A write through the API shows among the recent writes, with its principal.
                r = await client.post(
                    "/api/v1/tools/qsys_set",
                    json={"changes": [{"control": "Bar.gain", "value": -21}]},
                    headers={"Authorization": f"Bearer {operator_token}"},
                )
                assert r.status_code == 200, r.text
                await wait_text(driver, "#writes tbody tr", "automation", "Bar.gain", "-21.0dB")

                # Live values of a chosen component over the event stream.
                await in_browser(Select(driver.find_element(By.ID, "watch-core")).select_by_value,
                                 "venue")  # fmt: skip
                component = driver.find_element(By.ID, "watch-component")
                await in_browser(component.send_keys, "Lobby_BGM")
                await in_browser(driver.find_element(By.CSS_SELECTOR, "#watch-form button").click)
                await wait_text(driver, "#live-state", "live")
                gain = '#live tr[data-control="gain"] .value'
                await wait_text(driver, gain, "dB")
                await set_on_the_core(emulator.tcp_port, "Lobby_BGM", "gain", -33)
                await wait_text(driver, gain, "-33.0dB")
                assert "component=Lobby_BGM" in await in_browser(lambda: driver.current_url)

                if target := os.environ.get("QSYSD_STATUS_SCREENSHOT"):
                    await in_browser(driver.save_screenshot, target)

                # The page's policy blocked nothing it needs (a violation would be logged), and
                # its script raised nothing.
                console = [e["message"] for e in await in_browser(driver.get_log, "browser")]
                blocked = [m for m in console if "Content Security Policy" in m
                           or "Trusted Type" in m or "Uncaught" in m]  # fmt: skip
                assert not blocked, blocked

                # Signing out forgets the token; it never went into a URL or a log line.
                await in_browser(driver.find_element(By.ID, "sign-out").click)
                await wait_text(driver, "#sign-in-error", "Signed out")
                stored = await in_browser(driver.execute_script, "return sessionStorage.length")
                assert stored == 0
                paths = [r.get("path") for r in logs.records if r.get("event") == "http.request"]
                assert "/api/v1/events" in paths and "/api/v1/status" in paths
                assert not [line for line in logs.records if viewer_token in json.dumps(line)]
