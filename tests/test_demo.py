"""The Gradio demo: backend actions, and end to end in headless Debian Chromium via Playwright."""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from vidlm.errors import ConfigError
from vidlm.serve.demo import DemoBackend, DemoSettings, build_demo, reusable_connectors
from vidlm.testing import tiny_videolm

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "outputs" / "test-artifacts"  # git-ignored


@pytest.fixture(scope="module")
def model() -> Any:
    return tiny_videolm("slowfast", num_frames=4, slow_frames=2)


def test_training_free_connectors_only(model: Any) -> None:
    names = reusable_connectors(model)
    assert {"slowfast", "mlp2x_gelu", "temporal_pool"} <= set(names)
    assert "perceiver" not in names  # has weights no projector can supply


def test_encode_switches_connector_and_reports_tokens(model: Any, small_mp4: Path) -> None:
    backend = DemoBackend(model, generation={"max_new_tokens": 4})
    projector = model.connector.state_dict()["projector.linear_1.weight"].clone()
    sid, grid, text = backend.encode(str(small_mp4), DemoSettings(num_frames=8, slow_frames=2,
                                                                  fast_grid=2))
    session = backend.sessions[sid]
    budget = session.budget()
    assert Path(grid).is_file() and session.encoded().num_frames == 8
    assert f"8 frames -> {session.encoded().num_tokens} visual tokens" in text
    assert budget.pathway("slow") is not None and len(budget.pathway("slow").frames) == 2
    assert session.encoded().num_tokens == budget.total_tokens
    _, _, plain = backend.encode(str(small_mp4), DemoSettings(num_frames=8,
                                                              connector="mlp2x_gelu"))
    assert model.config.connector.name == "mlp2x_gelu"
    assert "8 frames -> 128 visual tokens" in plain  # 8 frames x 4x4 patches, no pooling
    assert "linear_1.weight" in model.connector.state_dict()
    assert (model.connector.state_dict()["linear_1.weight"] == projector).all()  # reused
    answer = "".join(backend.ask(sid, "What happens?"))
    assert session.history[-1]["content"] == answer
    with pytest.raises(ConfigError):
        backend.encode(None, DemoSettings())
    with pytest.raises(ConfigError):
        backend.encode(str(small_mp4), DemoSettings(connector="perceiver"))
    with pytest.raises(ConfigError):
        list(backend.ask("nope", "hi"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.browser
def test_demo_end_to_end_in_chromium(model: Any, bikes_mp4: Path, tmp_path: Path) -> None:
    if shutil.which("chromium") is None and not os.path.exists(CHROMIUM):
        pytest.fail("Debian chromium is not installed (apt-get install -y chromium, or "
                    "VIDLM_BROWSER=1 scripts/setup.sh); deselect with -m 'not browser'")
    from playwright.sync_api import expect, sync_playwright

    backend = DemoBackend(model, generation={"max_new_tokens": 8})
    demo = build_demo(backend, samples=[])
    port = _free_port()
    demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
                        quiet=True, allowed_paths=[str(backend.grids)])
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded",
                      timeout=120_000)
            expect(page.locator("#encode")).to_be_visible(timeout=120_000)
            page.locator("#video input[type=file]").set_input_files(str(bikes_mp4))
            expect(page.locator("#video video")).to_have_count(1, timeout=120_000)
            page.locator("#encode").click()
            grid = page.locator("#frame-grid img")
            expect(grid).to_be_visible(timeout=120_000)
            expect(page.locator("#token-info")).to_contain_text("visual tokens", timeout=60_000)
            assert grid.evaluate("img => img.naturalWidth") > 100
            session = next(iter(backend.sessions.values()))
            info = page.locator("#token-info").inner_text()
            assert f"{session.encoded().num_frames} frames -> " \
                   f"{session.encoded().num_tokens} visual tokens" in info
            page.locator("#question textarea").fill("What happens in the video?")
            page.locator("#ask").click()
            deadline = time.monotonic() + 120
            while not session.history and time.monotonic() < deadline:
                time.sleep(0.2)  # the answer is recorded once its stream ends
            assert session.history, "no answer was produced"
            expected = " ".join(session.history[-1]["content"].split())
            bot = page.locator("#chat .message.bot, #chat [data-testid=bot]").last
            expect(bot).to_be_visible(timeout=60_000)
            page.wait_for_timeout(500)
            shown = " ".join(bot.inner_text().split())
            assert expected and expected in shown
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shot = ARTIFACTS / "demo_e2e.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"demo screenshot: {shot}")
            browser.close()
    finally:
        demo.close()
