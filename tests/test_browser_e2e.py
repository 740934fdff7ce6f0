"""End-to-end in a real browser: Debian's chromium driven by playwright against `streamlit run app/main.py`.

Screenshots go to test-artifacts/browser/. Nothing is downloaded (no `playwright install`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url():
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app/main.py", f"--server.port={port}", "--server.headless=true",
         "--server.address=127.0.0.1", "--browser.gatherUsageStats=false"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        raise AssertionError("streamlit did not start:\n" + (proc.stdout.read() if proc.stdout else ""))
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def page(app_url):
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is required (.ci/run installs it)"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(90_000)
        yield page
        browser.close()


@pytest.fixture(scope="module")
def console_problems(page) -> list[tuple[str, str]]:
    """Browser-console errors and failed requests seen by the page (the app makes none; warnings are not
    collected: headless chromium's software WebGL warns about its own GPU stalls)."""
    problems: list[tuple[str, str]] = []
    page.on("console", lambda m: problems.append((m.type, m.text)) if m.type == "error" else None)
    page.on("requestfailed", lambda r: problems.append(("request failed", f"{r.url} {r.failure}")))
    return problems


def _wait_idle(page) -> None:
    """Wait until Streamlit has finished running the script (no 'Running…' status widget)."""
    page.wait_for_timeout(500)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=90_000)


def test_inspect_upload_editor_and_explorer(page, app_url, console_problems, tmp_path: Path) -> None:
    page.goto(app_url)
    page.get_by_text("Inspect a checkpoint").wait_for()
    _wait_idle(page)
    # upload a checkpoint on Inspect
    page.get_by_text("Upload", exact=True).click()
    _wait_idle(page)
    ckpt = tmp_path / "mlp.pt"
    torch.save(nn.Sequential(nn.Linear(6, 9), nn.ReLU(), nn.Linear(9, 4)).state_dict(), ckpt)
    page.locator("input[type=file]").first.set_input_files(str(ckpt))
    page.get_by_text("Graph nodes").wait_for()
    _wait_idle(page)
    body = page.inner_text("body")
    assert str(6 * 9 + 9 + 9 * 4 + 4) in body  # parameter count
    assert str(6 + 9 + 4) in body  # nodes
    page.locator(".js-plotly-plot").first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "inspect.png"), full_page=True)

    page.get_by_role("link", name="INR editor").click()
    page.get_by_text("MSE edited vs target").wait_for()
    _wait_idle(page)
    page.locator("img").first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "inr-editor.png"), full_page=True)
    assert "Traceback" not in page.inner_text("body")

    page.get_by_role("link", name="Zoo explorer").click()
    page.get_by_text("networks embedded with").wait_for()
    _wait_idle(page)
    page.locator(".js-plotly-plot").first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "zoo-explorer.png"), full_page=True)
    assert "Traceback" not in page.inner_text("body")
    assert console_problems == []



def _expect_one_line_error(page, name: str) -> str:
    """The page shows an alert naming the uploaded file `name`, and no traceback; returns the alert's text."""
    alert = page.locator("[data-testid='stAlert']", has_text=name).first
    alert.wait_for(timeout=30_000)
    _wait_idle(page)
    body = page.inner_text("body")
    assert "Traceback" not in body and "File \"/" not in body
    return alert.inner_text()


def test_hostile_uploads_leave_the_server_serving(page, app_url, tmp_path: Path) -> None:
    """A decompression bomb, a code-executing pickle and 100,000-deep nesting uploaded on Inspect: one error line
    each, no traceback, and the real server still answers its health check and renders the next page."""
    from core.bench.hostile import deep_dict_pt, pt_bomb

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    evil = tmp_path / "evil.pt"
    torch.save({"weight": torch.zeros(2, 2), "x": Payload()}, evil)
    files = [pt_bomb(tmp_path / "bomb.pt"), evil, deep_dict_pt(tmp_path / "deep.pt")]
    page.goto(app_url)
    page.get_by_text("Inspect a checkpoint").wait_for()
    _wait_idle(page)
    page.get_by_text("Upload", exact=True).click()
    _wait_idle(page)
    for path in files:
        page.locator("input[type=file]").first.set_input_files(str(path))
        message = _expect_one_line_error(page, path.name)  # names the uploaded file, not a temporary one
        assert message.count("\n") == 0, message
        assert urllib.request.urlopen(f"{app_url}/_stcore/health", timeout=10).read() == b"ok"
    page.screenshot(path=str(ARTIFACTS / "hostile-upload.png"), full_page=True)
    page.get_by_role("link", name="Symmetry lab").click()
    _wait_idle(page)
    assert "Traceback" not in page.inner_text("body")


def test_editor_upload_and_mixed_zoos(page, app_url, console_problems) -> None:
    """The INR editor edits an uploaded INR; the Zoo explorer maps two zoos of different kinds together."""
    page.goto(app_url)
    page.get_by_role("link", name="INR editor").click()
    page.get_by_text("MSE edited vs target").wait_for()
    _wait_idle(page)
    page.get_by_text("Upload", exact=True).first.click()
    _wait_idle(page)
    page.locator("input[type=file]").first.set_input_files(str(ROOT / "assets" / "examples" / "siren-mnist-3.pth"))
    page.get_by_text("MSE edited vs target").wait_for()
    _wait_idle(page)
    assert "Traceback" not in page.inner_text("body")
    page.screenshot(path=str(ARTIFACTS / "inr-editor-upload.png"), full_page=True)

    page.get_by_role("link", name="Zoo explorer").click()
    page.get_by_text("networks embedded with").wait_for()
    _wait_idle(page)
    zoos = page.locator("[data-testid='stMultiSelect']").first
    zoos.locator("input").click()
    page.get_by_role("option", name="cnn-digits").click()
    page.keyboard.press("Escape")
    _wait_idle(page)
    page.locator(".js-plotly-plot").first.wait_for()
    body = page.inner_text("body")
    assert "Traceback" not in body and "cnn-digits" in body
    page.screenshot(path=str(ARTIFACTS / "zoo-explorer-mixed.png"), full_page=True)
    assert console_problems == []
