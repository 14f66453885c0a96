"""report.html as a reader sees it: rendered by headless Chromium, the first screen holds the
headline (winner, difference with its interval, the seed test's p-value), the tables show the
confidence intervals, and every plot decodes. Skipped only where Chromium is not installed
(.ci/run installs it where apt can)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from specbench import compare as cmp

from .test_compare import make_run

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome",
                                          "chrome") if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed")

# appended to a copy of the page: after load, each image's decoded width goes into the DOM
PROBE = ("<script>window.addEventListener('load', () => document.body.setAttribute("
         "'data-widths', [...document.images].map(i => i.naturalWidth).join(',')));</script>")


def chromium(tmp_path, *args) -> str:
    res = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                          "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
                          "--virtual-time-budget=10000", *args],
                         capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    sweep = tmp_path_factory.mktemp("render") / "sweep"
    for seed in (0, 1, 2):
        make_run(sweep, f"medusa-s{seed}", seed=seed, tree_tau=1.50 + seed / 100)
        make_run(sweep, f"eagle3-s{seed}", alg="eagle3", seed=seed, tree_tau=1.80 + seed / 100)
    return cmp.compare([sweep])


def test_first_screen_holds_the_headline_and_plots_decode(report, tmp_path):
    page = report["out"] / "report.html"
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    dom = chromium(tmp_path, "--dump-dom", probed.as_uri())
    text = re.sub(r"<[^>]+>", " ", dom)
    assert dom.index("Winner: eagle3") < dom.index("<table")  # above every table
    assert re.search(r"difference \+0\.300, 95% CI \[[0-9.]+, [0-9.]+\] \(Welch, over seeds\)",
                     text)
    assert "significant (Welch's t-test, p = " in text and "3 vs 3 seeds" in text
    assert "Evidence: 10 prompts" in text and "Fair: the fingerprints" in text
    widths = re.search(r'data-widths="([0-9,]*)"', dom).group(1).split(",")
    plots = [b for b in report["blocks"] if b[0] == "img"]
    assert len(widths) == len(plots) >= 4 and all(int(w) > 100 for w in widths)


def test_screenshot_shows_tables_and_plots(report, tmp_path):
    import numpy as np
    from matplotlib.image import imread

    shot = tmp_path / "shot.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,6000", "--hide-scrollbars",
             (report["out"] / "report.html").as_uri())
    img = imread(shot)
    assert img.shape[:2] == (6000, 1280)
    top = (img[:900, :, :3] * 255).astype(np.uint8)  # the first screen: text, not blank
    assert (top < 128).any(axis=2).mean() > 0.005
    colours = {tuple(p) for p in (img[:, :, :3] * 255).astype(np.uint8).reshape(-1, 3)[::7]}
    assert len(colours) > 200  # the plots' lines and fills, not only text on white
