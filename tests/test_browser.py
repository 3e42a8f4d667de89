"""A real browser: JupyterLab headless, driven by Playwright through Debian's chromium (no browser download).

Opens notebooks/03_multilingual_features.ipynb (a copy), runs all cells, changes the concept dropdown and
checks that the heatmap image changes. The screenshots go to test-output/browser/ at the repository root.
``make test`` installs chromium first and sets MMF_REQUIRE_BROWSER=1, so a missing browser fails there
instead of skipping.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
WAIT_MS = 15 * 60 * 1000  # a cold cache extracts and trains before the widget appears


def _browser_or_skip():
    if CHROMIUM is None:
        if os.environ.get("MMF_REQUIRE_BROWSER"):
            pytest.fail("chromium is not installed; `make browser` installs Debian's chromium (apt-get, as root)")
        pytest.skip("chromium is not installed (make browser)")
    return pytest.importorskip("playwright.sync_api")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def lab(tmp_path):
    """JupyterLab on 127.0.0.1 with a token, serving a copy of the notebook; stopped by its PID."""
    shutil.copy(ROOT / "notebooks" / "03_multilingual_features.ipynb", tmp_path)
    port, token = free_port(), secrets.token_hex(16)
    # JupyterLab 4 renders only the cells in view; render them all so the widget's output is in the DOM
    settings = tmp_path / "lab-settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", "MMFEATURES_DATA": str(ROOT / "data"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab-settings")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}", "--ServerApp.open_browser=False",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.extension_manager=readonly", "--ServerApp.allow_root=True"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=(log := open(tmp_path / "lab.log", "w")))
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=1)
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited: {(tmp_path / 'lab.log').read_text()[-2000:]}") from None
            time.sleep(0.2)
    yield url, token
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.mark.slow  # minutes on 2 cores: `make test-slow`
def test_multilingual_heatmap_follows_the_dropdown_in_jupyterlab(lab):
    sync_api = _browser_or_skip()
    url, token = lab
    out = ROOT / "test-output" / "browser"
    out.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/lab/tree/03_multilingual_features.ipynb?token={token}")
        page.wait_for_selector(".jp-Notebook", timeout=120_000)
        page.wait_for_selector("#jp-main-statusbar >> text=Idle", timeout=120_000)
        page.click(".lm-MenuBar-itemLabel:text-is('Run')")
        page.locator("li.lm-Menu-item", has_text="Run All Cells").first.click()
        dropdown = page.locator(".widget-dropdown select").first
        dropdown.wait_for(timeout=WAIT_MS)
        image = page.locator(".widget-output img").first
        image.wait_for(timeout=WAIT_MS)
        # the later cells (the analysis, the in-sample comparison) keep the kernel busy, and a widget's callback
        # waits behind them: wait until every cell has run before moving the dropdown
        page.locator(".jp-InputArea-prompt", has_text="[*]").first.wait_for(state="detached", timeout=WAIT_MS)
        page.wait_for_selector("#jp-main-statusbar >> text=Idle", timeout=WAIT_MS)
        before = image.get_attribute("src")
        dropdown.scroll_into_view_if_needed()
        page.screenshot(path=str(out / "03_before.png"), full_page=False)
        options = dropdown.locator("option").all_inner_texts()
        current = dropdown.input_value()
        other = next(o for o in options if o != current)
        dropdown.select_option(other)
        page.wait_for_function(
            "([sel, old]) => { const i = document.querySelector(sel); return i && i.getAttribute('src') !== old; }",
            arg=[".widget-output img", before], timeout=120_000)
        after = page.locator(".widget-output img").first.get_attribute("src")
        dropdown.scroll_into_view_if_needed()
        page.screenshot(path=str(out / "03_after.png"), full_page=False)
        browser.close()
    assert before.startswith("data:image/png") and after.startswith("data:image/png") and after != before
    assert (out / "03_after.png").stat().st_size > 10_000


def test_demo_report_renders_in_chromium_with_every_figure(quick_demo):
    """The quick demo's report opened as a person would: figures present, none broken, verdicts shown."""
    sync_api = _browser_or_skip()
    out = ROOT / "test-output" / "report"
    out.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(quick_demo.index.as_uri())
        page.wait_for_load_state("load")
        images = page.evaluate("Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, "
                               "i.naturalWidth, i.naturalHeight])")
        headings = page.locator("h2").all_inner_texts()
        verdict_rows = page.locator("table").first.locator("tr").count()
        page.screenshot(path=str(out / "demo_top.png"))
        page.screenshot(path=str(out / "demo_full.png"), full_page=True)
        browser.close()
    figures = [f["file"] for s in quick_demo.stages for f in s.record.figures]
    assert len(images) == len(figures) >= 8
    broken = [src for src, complete, width, height in images if not (complete and width > 100 and height > 100)]
    assert not broken, f"broken images: {broken}"
    assert {Path(src).name for src, *_ in images} == set(figures)
    assert "Verdicts" in headings and any(h.startswith("Across languages") for h in headings)
    assert any(h.startswith("Across modalities") for h in headings) and any(h.startswith("Steering") for h in headings)
    assert verdict_rows == 1 + len(quick_demo.verdicts)
    assert (out / "demo_full.png").stat().st_size > 50_000
