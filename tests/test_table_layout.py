"""Tables that fit (issue 14): the terminal table in 120 columns (`--wide` for every column),
latencies under 1 ms in µs in every format, and the HTML results table inside its box in a
1400 px window (measured in headless Chromium: the page never scrolls sideways, the box
scrolls when the table is wider, and no cell becomes a tower of short lines)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from harness.report.table import comparison_rows, duration, markdown_table

from .test_compare import invoke, make_result, store_with_runs
from .test_html_report import _browser, _chromium

VALIDITY = "spread too wide: CV 35% > 15%; long tail: p99/p50 7.0 > 3"
REASON = ("representative data does not fit the model's inputs (shape, rank or dtype) during calibration: "
          "tensorflow/lite/kernels/conv.cc:345 input->dims->size != 4 (2 != 4)")


def _rows(rng):
    rows = []
    for device in ("local", "adb:192.0.2.10:5555"):
        for threads in (1, 4):
            for fs, p50 in (("fp32", 3.66), ("int8", 2.1), ("int8_float_io", 1500.0), ("int16x8", 25_000.0)):
                r = make_result("two_inputs_model", fs, rng=rng, p50=p50, device=device, threads=threads)
                r.validity = VALIDITY if fs == "int8" else "valid"
                r.representative = "samples"
                rows.append(r)
    rows.append(make_result("two_inputs_model", "float16", rng=rng, status="conversion_failed", reason=REASON))
    return rows


@pytest.fixture
def store(tmp_path):
    db = tmp_path / "s.sqlite"
    s, _ = store_with_runs(db, _rows(np.random.default_rng(3)))
    s.close()
    return db


def test_latencies_under_a_millisecond_read_in_microseconds():
    assert [duration(v) for v in (0.00366, 0.5, 1.0, 12.345, None)] == ["3.66 µs", "500 µs", "1.00 ms", "12.3 ms", "-"]
    rows = comparison_rows([make_result("m", "fp32", p50=3.66, noise=0.0), make_result("m", "int8", p50=2500.0, noise=0.0)])
    md = markdown_table(rows)
    assert "| 3.66 µs |" in md and "| 2.50 ms |" in md and "0.00366" not in md


def _width(text: str) -> int:
    return max(len(line) for line in text.splitlines())


def test_terminal_table_fits_120_columns_and_wide_shows_every_column(store, capsys, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    code, out, err = invoke(capsys, "report", "--store", str(store))
    assert code == 0, err
    assert _width(out) <= 120, out
    # never dropped: the mission's three figures (latency, memory, drift with acc: the rows have labels)
    for header in ("model", "flag set", "device", "thr", "status", "p50", "mem MB", "cosine", "acc", "valid"):
        assert header in out
    assert "reason" not in out and "max abs" not in out
    assert re.search(r"\d µs", out) and re.search(r"\d ms", out)
    # the reasons are numbered notes beneath the table; rows with the same note share its number
    table, notes = out.split("└", 1)
    assert "conversion_failed [2]" in table and table.count("ok [1]") == 4
    assert re.sub(r"\s+", " ", notes).strip().endswith(
        "[1] latency warn: " + VALIDITY + " [2] " + REASON)  # folded at the width, never cut
    # one device, one thread count: room for the size too (top-1 and then speed-up go first)
    one = tmp_path_rows(store, capsys)
    for header in ("size KB", "p50", "mem MB", "cosine", "acc"):
        assert header in one
    assert "top-1" not in one
    code, wide, err = invoke(capsys, "report", "--store", str(store), "--wide")
    assert code == 0, err
    for header in ("max abs", "mem MB", "rep", "size x", "speed-up", "cosine", "top-1", "acc", "size KB", "reason"):
        assert header in wide
    assert "[1]" not in wide and "(2 != 4)" in re.sub(r"[\s│┃]+", " ", wide)  # the wide table keeps the reason column
    assert _width(wide) > 120


def test_narrow_table_shows_top1_without_labels_and_no_notes_without_reasons(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    rng = np.random.default_rng(5)
    rows = [make_result("unlabelled", fs, rng=rng, p50=p50, accuracy=None) for fs, p50 in (("fp32", 40.0),
                                                                                          ("int8", 20.0))]
    for r in rows:
        r.drift["reference_accuracy"] = None
    db = tmp_path / "s.sqlite"
    s, _ = store_with_runs(db, rows)
    s.close()
    code, out, err = invoke(capsys, "report", "--store", str(db))
    assert code == 0, err
    assert "top-1" in out and " acc " not in out and "mem MB" in out and "cosine" in out
    assert out.rstrip().endswith("┘")  # nothing to say beneath it
    assert "[1]" not in out


def tmp_path_rows(store, capsys) -> str:
    """The narrow table of a run with one device and one thread count."""
    rng = np.random.default_rng(4)
    db = store.parent / "one.sqlite"
    rows = [r for r in _rows(rng) if r.device == "local" and r.threads == 1]
    s, _ = store_with_runs(db, rows)
    s.close()
    code, out, err = invoke(capsys, "report", "--store", str(db))
    assert code == 0, err
    assert _width(out) <= 120, out
    return out


PROBE = """<script>
const t = document.getElementById('results-table'), box = t.parentElement;
const td = t.querySelector('td'), style = getComputedStyle(td);
const line = parseFloat(style.lineHeight) || parseFloat(style.fontSize) * 1.25;
const tallest = Math.max(...[...t.querySelectorAll('tr:not(.st-bad) td')].map(c => c.getBoundingClientRect().height));
document.title = 'LAYOUT' + JSON.stringify({page: document.documentElement.scrollWidth, win: window.innerWidth,
  boxRight: box.getBoundingClientRect().right, overflow: getComputedStyle(box).overflowX,
  table: t.scrollWidth, box: box.clientWidth, tallest: tallest, line: line});
</script></body>"""


@pytest.mark.slow
def test_html_results_table_fits_or_scrolls_in_its_box(store, tmp_path, capsys):
    chromium = _chromium()
    report = tmp_path / "report.html"
    code, _, err = invoke(capsys, "report", "--store", str(store), "--format", "html", "--out", str(report))
    assert code == 0, err
    probe = tmp_path / "probe.html"  # the report as written, plus a script that measures its layout
    probe.write_text(report.read_text(encoding="utf-8").replace("</body>", PROBE), encoding="utf-8")
    p = _browser(chromium, tmp_path, "--window-size=1400,900", "--dump-dom", probe.as_uri())
    found = re.search(r"<title>LAYOUT(.*?)</title>", p.stdout, re.S)
    assert found, p.stderr[-2000:]
    m = json.loads(found.group(1).replace("&quot;", '"'))
    assert m["page"] <= m["win"], m  # the page does not scroll sideways
    assert m["boxRight"] <= m["win"], m
    assert m["table"] <= m["box"] or m["overflow"] == "auto", m  # fits, or scrolls inside its box
    assert m["tallest"] <= 3.5 * m["line"], m  # the `valid` cell wrapped to six lines before
