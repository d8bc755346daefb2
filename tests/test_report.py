"""report, history and runs on a real store of synthetic rows; pivot and Pareto helpers."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys

import numpy as np

from harness.report.pivot import pivot
from harness.report.plots import pareto_front, to_svg

from .conftest import ROOT
from .test_compare import invoke, make_result, store_with_runs


def _campaign_rows(rng, p50_scale=1.0):
    rows = []
    for threads in (1, 2):
        rows += [make_result("cnn", "fp32", rng=rng, p50=1000.0 * p50_scale / threads, threads=threads,
                             size=58_000, max_abs=1e-7),
                 make_result("cnn", "int8", rng=rng, p50=500.0 * p50_scale / threads, threads=threads,
                             size=20_000, max_abs=5e-3),
                 make_result("cnn", "float16", rng=rng, p50=1100.0 * p50_scale / threads, threads=threads,
                             size=30_000, max_abs=1e-4)]
    rows.append(make_result("lstm", "int8", status="conversion_failed", reason="op UNIDIRECTIONAL_SEQUENCE_LSTM",
                            size=None))
    return rows


def test_pareto_front():
    pts = [(1.0, 0.5), (2.0, 0.1), (3.0, 0.2), (0.5, 0.9), (2.0, 0.1), (4.0, 0.05)]
    front = pareto_front(pts)
    assert set(front) == {0, 1, 3, 4, 5}  # (3, 0.2) is dominated by (2, 0.1); equal points both stay
    assert pareto_front([]) == []
    assert pareto_front([(1.0, 1.0)]) == [0]


def test_pivot_columns_and_speedup():
    rng = np.random.default_rng(0)
    p = pivot(_campaign_rows(rng), "fp32")
    cpu = "interpreter/cpu"  # the runtime API/accelerator is part of a column (docs/runtimes.md)
    assert p.columns == [("local", 1, True, cpu), ("local", 2, True, cpu)]
    cells = {(m, f): c for m, f, c in p.rows}
    int8 = cells[("cnn", "int8")][("local", 2, True, cpu)]
    assert 1.8 < int8.speedup < 2.2 and int8.p50_ms < 0.3
    assert cells[("lstm", "int8")][("local", 1, True, cpu)].text == "conversion_failed"
    assert p.headers()[2] == "local 1thr p50 (speed-up)"


def test_svg_has_no_urls_but_namespaces():
    from matplotlib.figure import Figure

    fig = Figure()
    fig.add_subplot().set_title("<script>x</script> $a$")
    svg = to_svg(fig)
    assert svg.startswith("<svg")
    assert "&lt;script&gt;" in svg and "<script" not in svg
    urls = re.findall(r'(\S*)https?://', svg)
    assert all(u.startswith("xmlns") for u in urls), urls


def test_report_formats(tmp_path, capsys):
    rng = np.random.default_rng(1)
    db = tmp_path / "s.sqlite"
    s, (old, new) = store_with_runs(db, _campaign_rows(rng, 1.1), _campaign_rows(rng))
    s.close()
    store = ["--store", str(db)]

    code, out, err = invoke(capsys, "report", *store)  # latest run, terminal table
    assert code == 0, err
    assert new in out and "int8" in out and "conversion_failed" in out and "2.00x" in out

    code, _, err = invoke(capsys, "report", "202601", *store)  # a prefix of both runs
    assert code == 2 and "202601" in err
    code, out, _ = invoke(capsys, "report", old[:10], *store, "--format", "json")  # a unique prefix
    assert code == 0 and json.loads(out)["run"] == old
    code, out, _ = invoke(capsys, "report", old, *store, "--format", "md")
    assert code == 0 and out.startswith("| model | flag set |") and "| cnn | int8 |" in out

    code, out, _ = invoke(capsys, "report", *store, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 7 and rows[1]["flag_set"] == "int8"

    code, out, _ = invoke(capsys, "report", *store, "--format", "json", "--baseline", "float16")
    data = json.loads(out)
    assert code == 0 and data["run"] == new and data["baseline"] == "float16"
    fp32 = next(r for r in data["rows"] if r["flag_set"] == "fp32" and r["threads"] == 1)
    assert 1.0 < fp32["speedup"] < 1.2

    code, out, _ = invoke(capsys, "report", *store, "--pivot", "--format", "md")
    assert code == 0 and "local 2thr p50 (speed-up)" in out and "(2.00x)" in out
    code, out, _ = invoke(capsys, "report", *store, "--pivot", "--format", "csv")
    assert code == 0 and "local 1thr speedup" in out.splitlines()[0]
    code, out, _ = invoke(capsys, "report", *store, "--pivot")
    assert code == 0 and "local 1thr" in out

    target = tmp_path / "out" / "r.md"
    code, _, err = invoke(capsys, "report", *store, "--format", "md", "--out", str(target))
    assert code == 0 and target.read_text().startswith("| model") and "wrote" in err


def test_report_html_escapes_names(tmp_path, capsys):
    rng = np.random.default_rng(2)
    evil = "<script>document.title='pwned'</script>"
    rows = _campaign_rows(rng) + [make_result(evil, "fp32", rng=rng),
                                  make_result("m2", evil, rng=rng, status="runtime_failed", reason=evil)]
    db = tmp_path / "s.sqlite"
    s, (run,) = store_with_runs(db, rows)
    s.close()
    out = tmp_path / "report.html"
    code, stdout, err = invoke(capsys, "report", "--store", str(db), "--format", "html", "--out", str(out),
                               "--drift-metric", "1-cosine", "--history")
    assert code == 0, err
    html = out.read_text()
    assert "<script" not in html and "&lt;script&gt;" in html
    assert html.count("<svg") >= 6 and "Pareto front" in html and "Failures" in html
    assert 'id="pivot-table"' in html
    assert all(u.startswith("xmlns") for u in re.findall(r"(\S*)https?://", html))


def test_report_default_html_path_and_errors(tmp_path, capsys):
    rng = np.random.default_rng(3)
    db = tmp_path / "s.sqlite"
    s, (run,) = store_with_runs(db, _campaign_rows(rng))
    s.db.execute("UPDATE runs SET out_dir = ? WHERE id = ?", (str(tmp_path / "run1"), run))
    s.close()
    code, out, _ = invoke(capsys, "report", "--store", str(db), "--format", "html")
    assert code == 0 and (tmp_path / "run1" / "report.html").is_file()
    code, _, err = invoke(capsys, "report", "zzz", "--store", str(db))
    assert code == 2 and "no run 'zzz'" in err
    code, _, err = invoke(capsys, "report", "--store", str(db), "--baseline", "fp16")
    assert code == 2 and "--baseline fp16" in err and "cnn" not in err and "fp32" in err
    code, _, err = invoke(capsys, "report", "--store", str(tmp_path / "none.sqlite"))
    assert code == 2 and "no results store" in err


def test_history_and_runs(tmp_path, capsys):
    rng = np.random.default_rng(4)
    db = tmp_path / "s.sqlite"
    s, ids = store_with_runs(db, *[_campaign_rows(rng, 1 + i / 10) for i in range(3)])
    s.close()
    code, out, _ = invoke(capsys, "history", "cnn", "int8", "--store", str(db), "--format", "md")
    assert code == 0
    lines = [line for line in out.splitlines() if line.startswith("| 2026")]
    assert len(lines) == 6 and all(i in out for i in ids)
    code, out, _ = invoke(capsys, "history", "cnn", "int8", "--store", str(db), "--format", "json")
    data = json.loads(out)
    assert code == 0 and len(data["rows"]) == 6 and data["rows"][0]["p50_ms"] is not None
    target = tmp_path / "h.html"
    code, out, _ = invoke(capsys, "history", "cnn", "int8", "--store", str(db), "--format", "html",
                          "--out", str(target))
    assert code == 0 and "<svg" in target.read_text()
    code, out, _ = invoke(capsys, "history", "cnn", "int8", "--store", str(db))
    assert code == 0 and ids[0] in out
    code, _, err = invoke(capsys, "history", "cnn", "int4", "--store", str(db))
    assert code == 2 and "int4" in err

    code, out, _ = invoke(capsys, "runs", "--store", str(db), "--format", "json")
    runs = json.loads(out)
    assert code == 0 and [r["id"] for r in runs] == ids[::-1]
    assert runs[0]["rows"] == 7 and runs[0]["ok"] == 6 and runs[0]["state"] == "done"
    code, out, _ = invoke(capsys, "runs", "--store", str(db))
    assert code == 0 and ids[0] in out and "synthetic" in out


def test_commands_import_lazily():
    """Loading the report commands pulls in neither NumPy, SciPy nor matplotlib."""
    code = ("import sys; import harness.cli.main; "
            "bad = [m for m in ('numpy', 'scipy', 'matplotlib', 'jinja2') if m in sys.modules]; print(bad)")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.stdout.strip() == "[]", p.stdout + p.stderr


# ------------------------------------------------------------------ fast paths for large runs

def _reference_text(values: dict) -> dict:
    """The cell texts as comparison_rows made them before the column-wise formatter (kept as the spec)."""
    from harness.report.table import duration as _duration
    from harness.report.table import fmt as _fmt

    text = {k: _fmt(v) for k, v in values.items()}
    if values["valid"] and values["valid"] != "valid":
        text["valid"] = "warn: " + values["valid"]
    for k in ("p50_ms", "p90_ms", "init_ms"):
        text[k] = _duration(values[k])
    text["max_abs"] = _fmt(values["max_abs"], 4)
    text["cosine"] = _fmt(values["cosine"], 4)
    text["snr_db"] = _fmt(values["snr_db"], 1)
    text["size_kb"] = _fmt(values["size_kb"], 1)
    text["peak_mb"] = _fmt(values["peak_mb"], 1)
    for k in ("speedup", "size_ratio"):
        if values[k] is not None:
            text[k] = f"{values[k]:.2f}x"
    if values["accuracy"] is not None and values["reference_accuracy"] is not None:
        text["accuracy"] = f"{values['accuracy']:.3f} ({values['reference_accuracy']:.3f})"
    elif values["accuracy"] is not None:
        text["accuracy"] = f"{values['accuracy']:.3f}"
    if values["top1"] is not None:
        text["top1"] = f"{values['top1']:.3f}"
    return text


def test_column_formatting_matches_the_reference_for_odd_values():
    import math

    from harness.report.table import Row, comparison_rows, text_columns

    rng = np.random.default_rng(5)
    rows = comparison_rows(_campaign_rows(rng), "fp32")
    odd = [None, 0.0, -0.0, 1e-9, -1e-9, 0.00999, 0.01, 123456.789, math.inf, -math.inf, math.nan, 7, "text", 2.5e-5]
    keys = ["size_kb", "p50_ms", "max_abs", "cosine", "snr_db", "peak_mb", "speedup", "top1", "size_ratio"]
    for i, v in enumerate(odd):
        values = dict(rows[i % len(rows)].values)
        for k in keys:
            if k in ("p50_ms",) and (isinstance(v, str) or (isinstance(v, float) and not math.isfinite(v))):
                continue  # _sig takes numbers only, as before
            if k in ("speedup", "top1", "size_ratio") and isinstance(v, str):
                continue
            values[k] = v
        values["valid"] = [None, "valid", "few runs"][i % 3]
        values["accuracy"], values["reference_accuracy"] = [(None, None), (0.9, None), (0.9, 0.95)][i % 3]
        rows.append(Row(values))
    expected = [_reference_text(r.values) for r in rows]
    all_keys = list(rows[0].values)
    assert [dict(zip(all_keys, cells, strict=True)) for cells in zip(*text_columns(rows, all_keys), strict=True)] \
        == expected
    assert [r.text for r in rows] == expected


def _cells(table_text: str) -> list[list[str]]:
    """The cell texts of a box-drawn table (rich's or plain_table's), row by row."""
    return [[c.strip() for c in line.strip()[1:-1].split("│" if line.lstrip().startswith("│") else "┃")]
            for line in table_text.splitlines() if line.lstrip()[:1] in ("│", "┃")]


def test_plain_table_has_the_rich_tables_columns_and_cells():
    from rich.console import Console

    from harness.report.table import comparison_rows, plain_comparison_table, rich_table

    rng = np.random.default_rng(6)
    rows = comparison_rows(_campaign_rows(rng) + [make_result("[bold]x[/]", "int8", rng=rng, status="runtime_failed",
                                                              reason="a [red]reason[/] | <b>")], "fp32")
    rows[1].values["valid"] = "wide spread"
    console = Console(width=400, color_system=None, record=True)
    console.print(rich_table(rows, title="t"))
    rich_text = console.export_text()
    rich_cells = _cells(rich_text)
    plain = plain_comparison_table(rows, title="t")
    plain_cells = _cells(plain)
    assert plain_cells == rich_cells
    assert len(plain_cells) == len(rows) + 1 and plain_cells[0][:2] == ["model", "flag set"]
    assert ["[bold]x[/]", "int8"] == plain_cells[-1][:2] and "runtime_failed [3]" in plain_cells[-1]
    assert "warn" in plain_cells[2] and "ok [1]" in plain_cells[2]
    # the notes beneath the table: the same lines in both, markup and all, as written
    notes = [line for line in plain.splitlines() if line.startswith("[")]
    assert notes == [line for line in rich_text.splitlines() if line.startswith("[")]
    assert notes == ["[1] latency warn: wide spread", "[2] op UNIDIRECTIONAL_SEQUENCE_LSTM",
                     "[3] a [red]reason[/] | <b>"]
    wide = plain_comparison_table(rows, title="t", wide=True)
    assert "a [red]reason[/] | <b>" in _cells(wide)[-1][-1] and "[wide spread]" in _cells(wide)[2][-1]


def test_report_table_above_the_threshold_is_plain_and_complete(tmp_path, capsys, monkeypatch):
    from harness.report import table

    rng = np.random.default_rng(7)
    db = tmp_path / "s.sqlite"
    s, (run,) = store_with_runs(db, _campaign_rows(rng))
    s.close()
    monkeypatch.setenv("COLUMNS", "400")  # the plain table never folds a cell; rich would below its width
    code, rich_out, _ = invoke(capsys, "report", "--store", str(db))
    monkeypatch.setattr(table, "LARGE_TABLE_ROWS", 3)
    code2, plain_out, _ = invoke(capsys, "report", "--store", str(db))
    assert code == code2 == 0 and rich_out != plain_out
    assert _cells(plain_out) == _cells(rich_out) and len(_cells(plain_out)) == 8
    code, out, _ = invoke(capsys, "report", "--store", str(db), "--pivot")
    assert code == 0 and len(_cells(out)) == 5 and "local 2thr p50 (speed-up)" in out


def test_json_report_rows_one_per_line_and_non_finite_numbers_as_before():
    import math

    from harness.core.result import json_safe as _json_safe
    from harness.report.export import report_json

    head = {"run": "r", "campaign": None, "baseline": "fp32"}
    rows = [{"a": 1.5, "b": [0.1, 0.2], "c": None}, {"a": math.inf, "b": [-math.inf], "c": math.nan},
            {"a": "Infinity NaN", "b": [], "c": "x\ny"}]
    text = report_json(head, rows)
    assert json.loads(text) == _json_safe({**head, "rows": rows})
    assert len(text.splitlines()) == 1 + len(head) + 1 + len(rows) + 2  # {, head, "rows": [, rows, ], }
    assert json.loads(report_json(head, [])) == {**head, "rows": []}


def test_html_overview_for_many_models(tmp_path, capsys, monkeypatch):
    from harness.report import html

    rng = np.random.default_rng(8)
    evil = "<script>alert(1)</script>"
    rows = _campaign_rows(rng) + [make_result(evil, "fp32", rng=rng), make_result(evil, evil, rng=rng, p50=400.0)]
    db = tmp_path / "s.sqlite"
    s, _ = store_with_runs(db, rows)
    s.close()
    monkeypatch.setattr(html, "PER_MODEL_PLOTS", 1)
    out = tmp_path / "r.html"
    code, _, err = invoke(capsys, "report", "--store", str(db), "--format", "html", "--out", str(out))
    assert code == 0, err
    page = out.read_text()
    assert 'id="overview"' in page and "3 models: per-model plots" in page and '<h2 class="model">' not in page
    overview = page[page.index('id="overview"'):]
    assert overview.count("<svg") == 3 and "Pareto front" in overview
    assert "<script" not in page and "&lt;script&gt;" in overview  # flag set names in the plots stay text
    assert all(u.startswith("xmlns") for u in re.findall(r"(\S*)https?://", page))
    body = page[page.index('id="results-table"'):page.index("</table>")]
    assert body.count("<tr class=") == len(rows) and "#results-table td:nth-child(3), " in page  # thr, right-aligned


def test_svg_axis_ticks_are_inside_and_readable():
    from harness.report.svg import Axis

    narrow = Axis([0.9993, 1.0007], 0, 100)
    ticks = narrow.ticks()
    assert len(ticks) >= 3 and len({label for _, label in ticks}) == len(ticks)  # distinct labels
    assert all(0 <= narrow(v) <= 100 for v, _ in ticks)
    log = Axis([1e-7, 1e-2], 100, 0, log=True)
    assert [label for _, label in log.ticks()][:2] == ["1e-07", "1e-06"] and log(1e-7) > log(1e-2)
