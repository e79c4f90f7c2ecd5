"""Debian's headless chromium, driven over the DevTools protocol, for the documentation page tests.

Skipped where chromium is absent, except in CI (`CI` set), where a missing browser fails the test.
Every page opened records the Content-Security-Policy violations it meets (`csp_violations`).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

CHROMIUM_NAMES = ("chromium", "chromium-browser")
START_SECONDS = 30
_RECORD_CSP = (
    "window.__csp = [];"
    "document.addEventListener('securitypolicyviolation',"
    " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
)


def chromium_path() -> str:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail("chromium is required in CI for the documentation page tests (apt-get install chromium)")
    pytest.skip("chromium is not installed (apt-get install chromium); the docs page tests need it")


class Page:
    """One tab: evaluate JavaScript in it and wait for conditions."""

    def __init__(self, socket: ClientConnection, session: str, ids: Iterator[int]) -> None:
        self._socket, self._session, self._ids = socket, session, ids

    def command(self, method: str, **params: Any) -> dict[str, Any]:
        return _command(self._socket, self._ids, method, params, session=self._session)

    def evaluate(self, expression: str) -> Any:
        answer = self.command("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in answer:
            raise AssertionError(f"{expression!r} raised: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def wait_for(self, expression: str, *, seconds: float = 30, what: str = "") -> Any:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.2)
        body = self.evaluate("document.body ? document.body.innerText.slice(0, 2000) : ''")
        raise AssertionError(f"timed out waiting for {what or expression}; the page shows:\n{body}")

    def csp_violations(self) -> list[str]:
        return list(self.evaluate("window.__csp || []"))


class Browser:
    def __init__(self, socket: ClientConnection) -> None:
        self._socket = socket
        self._ids = itertools.count(1)

    @contextlib.contextmanager
    def open(self, url: str) -> Iterator[Page]:
        target = _command(self._socket, self._ids, "Target.createTarget", {"url": "about:blank"})["targetId"]
        session = _command(self._socket, self._ids, "Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        page = Page(self._socket, session, self._ids)
        try:
            page.command("Page.enable")
            page.command("Page.addScriptToEvaluateOnNewDocument", source=_RECORD_CSP)
            page.command("Page.navigate", url=url)
            yield page
        finally:
            _command(self._socket, self._ids, "Target.closeTarget", {"targetId": target})


@contextlib.contextmanager
def headless_chromium() -> Iterator[Browser]:
    executable = chromium_path()
    profile = tempfile.mkdtemp(prefix="observatory-chromium-")
    # Its own process group: chromium's helpers (zygote, renderers, crashpad) outlive the main
    # process and keep writing to the profile, so all of them go before the profile does.
    process = subprocess.Popen(
        [
            executable,
            "--headless=new",
            "--no-sandbox",  # the tests may run as root
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        address = _devtools_address(process)
        with connect(address, max_size=None, open_timeout=START_SECONDS) as socket:
            yield Browser(socket)
    finally:
        _stop_group(process)
        _remove_profile(profile)


def _stop_group(process: subprocess.Popen[str]) -> None:
    for sig, wait_seconds in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=wait_seconds)
            break
    # Helpers of the group may still be exiting after the main process; SIGKILL reaps them all.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _remove_profile(profile: str) -> None:
    """Remove the profile, retrying while a dying helper still writes to it."""
    deadline = time.monotonic() + 10
    while True:
        try:
            shutil.rmtree(profile)
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _devtools_address(process: subprocess.Popen[str]) -> str:
    assert process.stderr is not None
    deadline = time.monotonic() + START_SECONDS
    seen: list[str] = []
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        match = re.search(r"DevTools listening on (ws://\S+)", line)
        if match:
            return match.group(1)
    raise AssertionError("chromium did not start:\n" + "".join(seen[-20:]))


def _command(
    socket: ClientConnection, ids: Iterator[int], method: str, params: dict[str, Any], *, session: str | None = None
) -> dict[str, Any]:
    number = next(ids)
    message: dict[str, Any] = {"id": number, "method": method, "params": params}
    if session is not None:
        message["sessionId"] = session
    socket.send(json.dumps(message))
    while True:  # events arrive in between: skipped (the pages record what the tests need themselves)
        answer = json.loads(socket.recv(timeout=60))
        if answer.get("id") == number:
            if "error" in answer:
                raise AssertionError(f"{method}: {answer['error']}")
            return dict(answer.get("result", {}))
