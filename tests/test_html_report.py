"""The HTML report in a real browser (headless Chromium): tables, plots, no script runs, offline."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from .conftest import ROOT
from .test_compare import invoke, make_result, store_with_runs

EVIL_IMG = "<img src=x onerror=\"document.title='pwned'\">"
EVIL_SCRIPT = "<script>document.title='pwned'</script>"


def _chromium() -> str:
    found = shutil.which("chromium")
    if found is None and os.geteuid() == 0:
        subprocess.run([str(ROOT / "scripts" / "system-deps.sh"), "--browser"], capture_output=True, timeout=600)
        found = shutil.which("chromium")
    if found is None:
        pytest.skip("chromium is missing and could not be installed (run scripts/system-deps.sh --browser as root)")
    return found


def _browser(chromium: str, tmp_path, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=2000"]
    return subprocess.run([chromium, *flags, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_html_report_in_chromium(tmp_path, capsys):
    chromium = _chromium()
    rng = np.random.default_rng(0)
    rows = [make_result(EVIL_IMG, "fp32", rng=rng, size=58_000, max_abs=1e-7),
            make_result(EVIL_IMG, EVIL_SCRIPT, rng=rng, p50=500.0, size=20_000, max_abs=5e-3),
            make_result(EVIL_IMG, "float16", rng=rng, p50=1100.0, size=30_000, max_abs=1e-4),
            make_result("cnn", "fp32", rng=rng, threads=2, device=EVIL_SCRIPT),
            make_result("lstm", "int8", status="conversion_failed", reason=EVIL_SCRIPT + " " + EVIL_IMG)]
    db = tmp_path / "s.sqlite"
    s, (run,) = store_with_runs(db, rows)
    s.db.execute("UPDATE runs SET campaign = ? WHERE id = ?", (EVIL_SCRIPT, run))
    s.close()
    report = tmp_path / "report.html"
    code, _, err = invoke(capsys, "report", "--store", str(db), "--format", "html", "--out", str(report))
    assert code == 0, err
    html = report.read_text(encoding="utf-8")

    # offline: no URL anywhere but in SVG namespace declarations
    for m in re.finditer(r"(\S*)https?://", html):
        assert m.group(1).startswith("xmlns"), html[max(0, m.start() - 80):m.end() + 80]
    assert "<script" not in html and "<img" not in html and "<link" not in html

    p = _browser(chromium, tmp_path, "--dump-dom", report.as_uri())
    dom = p.stdout
    assert "</html>" in dom, p.stderr[-2000:]
    title = re.search(r"<title>(.*?)</title>", dom, re.S).group(1)
    assert title != "pwned" and title.startswith("tflite-harness report:")  # no script set it
    assert "<script" not in dom and "<img" not in dom  # the names stayed text
    assert "&lt;img src=x onerror=" in dom and "&lt;script&gt;document.title" in dom
    assert 'id="results-table"' in dom and 'id="pivot-table"' in dom and 'id="failures"' in dom
    assert dom.count("<svg") >= 3 and "Pareto front" in dom and "Latency distribution" in dom

    shot = tmp_path / "shot.png"
    p = _browser(chromium, tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", report.as_uri())
    assert shot.is_file() and shot.stat().st_size > 10_000, p.stderr[-2000:]
