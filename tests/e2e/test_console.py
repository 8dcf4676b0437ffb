"""The web console in headless Chromium (Debian's build, driven by Playwright): sign in, submit,
watch the events arrive live, see the final message, diff and artifacts. Also the events-token
route the console uses because EventSource cannot send the API key header."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.stack import Stack
from shared.adapters import Adapters
from shared.apikeys import create_key, find_key, revoke_key

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def key(adapters: Adapters) -> str:
    return create_key(adapters.firestore, adapters.settings, tenant="console", name="web").key


def test_events_token_opens_the_job_stream_without_a_header(
    stack: Stack, key: str, adapters: Adapters
) -> None:
    with httpx.Client(base_url=stack.urls["api"], timeout=60) as c:
        job = c.post(
            "/v2/exec", json={"prompt": "[[script:hello]] hi"}, headers={"X-API-KEY": key}
        ).json()
        path = f"/console/api/jobs/{job['job_id']}/events-token"
        assert c.post(path).status_code == 401
        grant = c.post(path, headers={"X-API-KEY": key}).json()
        assert grant["events_url"].endswith(grant["token"])
        with c.stream("GET", grant["events_url"]) as r:
            assert r.status_code == 200
            body = "".join(r.iter_text())
        assert '"status":"succeeded"' in body
        # Replay from an event id, as EventSource does on reconnect.
        replay = c.get(grant["events_url"], headers={"Last-Event-ID": "2"}).text
        assert "id: 2\n" not in replay
        assert "id: 3\n" in replay
        # A token is bound to its job; a tampered one is refused.
        other = c.post(
            "/v2/exec", json={"prompt": "[[script:hello]] b"}, headers={"X-API-KEY": key}
        ).json()
        wrong = c.get(f"/console/api/jobs/{other['job_id']}/events?token={grant['token']}")
        assert wrong.status_code == 401
        assert wrong.headers["content-type"].startswith("application/problem+json")
        assert c.get(grant["events_url"] + "x").status_code == 401
        # The token acts for its key: once the key is revoked it opens nothing more (the API
        # sees that within its key cache's few seconds).
        stored = find_key(adapters.firestore, adapters.settings, key)
        assert stored is not None
        revoke_key(adapters.firestore, adapters.settings, stored.key_id)
        deadline = time.monotonic() + 15
        while (status := c.get(grant["events_url"]).status_code) == 200:
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert status == 401


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    assert CHROMIUM.exists(), "chromium missing: make test installs the Debian package"
    from playwright import sync_api

    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1440, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


def test_console_submits_and_follows_a_job_live(stack: Stack, key: str, browser: Any) -> None:
    from playwright.sync_api import expect

    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{stack.urls['api']}/console/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("API key").fill("cck_wrong_key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin-error")).to_contain_text("not valid")
    page.get_by_label("API key").fill(key)
    page.keyboard.press("Enter")  # the form works from the keyboard
    expect(page.get_by_role("heading", name="New job")).to_be_visible()

    page.get_by_label("Prompt").fill("[[script:hello]] write hello.py and run it")
    page.get_by_label("Priority").select_option("high")
    page.get_by_role("button", name="Run").click()

    log = page.get_by_role("log")
    expect(log).to_contain_text("→ queued", timeout=20_000)
    expect(log).to_contain_text("$ /bin/bash -c 'python3 hello.py'", timeout=60_000)
    expect(log).to_contain_text("■ succeeded", timeout=60_000)
    expect(page.locator("#detail-status")).to_have_text("succeeded")
    expect(page.locator("#final-message")).to_contain_text("hello from codex-cloud")
    expect(page.locator("#diff")).to_contain_text('+print("hello from codex-cloud")')
    expect(page.locator("#artifacts")).to_contain_text("diff.patch")
    expect(page.locator("#jobs-body .badge.succeeded").first).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('codex-cloud.api-key')") == key
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "console.png"), full_page=True)
    assert errors == []
