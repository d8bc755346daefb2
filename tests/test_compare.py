"""compare: the regression gate, on synthetic rows in a real store and on two real runs."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import astuple

import numpy as np
import pytest

from harness.core.result import Result
from harness.report.compare import (
    IMPROVED,
    MISSING,
    REGRESSED,
    SAME,
    UNCONFIRMED,
    Thresholds,
    compare_results,
    median_change_ci,
)
from harness.store import Store

from .conftest import MODELS, ROOT, run_cli

_ENTRY = "import sys; from harness.cli.main import main; main(sys.argv[1:])"


def make_result(model="m", flag_set="fp32", *, p50=1000.0, n=200, noise=0.05, rng=None, status="ok",
                reason="", size=50_000, max_abs=1e-6, cosine=0.9999, accuracy=0.9, xnnpack=True,
                device="local", threads=1, peak=4.0, artifact=None) -> Result:
    """A row whose raw samples are lognormal around p50 (spread `noise`).

    Its artifact id follows what would change the .tflite (model, flag set, p50 as "the work it
    does", size): rows planted slower or bigger are other artifacts, identical ones the same.
    """
    import hashlib

    rng = rng if rng is not None else np.random.default_rng()
    artifact = artifact or hashlib.sha256(f"{model}/{flag_set}/{p50}/{size}".encode()).hexdigest()
    r = Result(model=model, flag_set=flag_set, device=device, threads=threads, status=status, reason=reason,
               xnnpack=xnnpack, size_bytes=size, runtime="ai_edge_litert", runtime_version="1.0",
               artifact=artifact)
    if status == "ok":
        s = p50 * np.exp(noise * rng.standard_normal(n))
        r.samples_us = [float(v) for v in s]
        q = np.percentile(s, [50, 90, 99])
        r.latency_us = {"mean": float(s.mean()), "std": float(s.std()), "min": float(s.min()), "p50": float(q[0]),
                        "p90": float(q[1]), "p99": float(q[2]), "max": float(s.max()), "n": n}
        r.peak_rss_mb = peak
        r.drift = {"max_abs": max_abs, "mean_abs": max_abs / 10, "rmse": max_abs / 5, "cosine": cosine,
                   "snr_db": 60.0, "top1_agreement": 1.0, "accuracy": accuracy, "reference_accuracy": 0.9,
                   "samples": 32}
    return r


def store_with_runs(path, *runs: list[Result]) -> tuple[Store, list[str]]:
    s = Store(path)
    ids = []
    for i, results in enumerate(runs):
        run_id = f"2026010{i + 1}-120000-{i:04x}"
        s.start_run(run_id, campaign="synthetic", campaign_path=None, tool_versions={}, config={}, out_dir="")
        for r in results:
            s.add_result(run_id, r)
        s.finish_run(run_id)
        s.db.execute("UPDATE runs SET started_at = ? WHERE id = ?", (1_700_000_000 + 3600 * i, run_id))
        ids.append(run_id)
    return s, ids


def invoke(capsys, *args: str) -> tuple[int, str, str]:
    """The CLI in-process: (exit code, stdout, stderr)."""
    from harness.cli.main import main

    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


# ------------------------------------------------------------------ statistics

def test_identical_distributions_are_not_flagged():
    rng = np.random.default_rng()  # seed-free on purpose: must hold for any noise
    for _ in range(30):
        c = compare_results([make_result(rng=rng)], [make_result(rng=rng)])
        assert c.rows[0].verdict == SAME, c.rows[0].latency
        assert not c.regressed


def test_twenty_percent_slowdown_of_stored_results_is_unconfirmed():
    """Verdict class `unconfirmed`: stored samples alone never fail by default; --unconfirmed fail does."""
    rng = np.random.default_rng()
    c = compare_results([make_result(rng=rng, noise=0.1)], [make_result(rng=rng, noise=0.1, p50=1200.0)])
    row = c.rows[0]
    assert row.verdict == UNCONFIRMED and row.slower_unconfirmed and not c.regressed and not c.failed
    assert "unconfirmed: stored results only" in row.why
    strict = compare_results([make_result(rng=rng, noise=0.1)], [make_result(rng=rng, noise=0.1, p50=1200.0)],
                             Thresholds(unconfirmed="fail"))
    assert strict.failed and not strict.regressed and strict.summary().startswith("FAILED: 1 unconfirmed slowdown (--unconfirmed fail)")
    assert row.latency.significant and row.latency.p_value < 0.01
    assert row.latency.ci_low < 0.20 < row.latency.ci_high or abs(row.latency.change - 0.2) < 0.05
    assert row.latency.ci_low > 0.05
    assert "latency p50 +" in row.unconfirmed[0]


def _noisy_runs(rng, rows=20, process_noise=0.05, shift=None):
    """Rows whose NEW medians move by a random per-process factor (what two processes do)."""
    base, new = [], []
    for i in range(rows):
        base.append(make_result(model=f"m{i}", rng=rng, noise=0.01))
        factor = np.exp(process_noise * rng.standard_normal()) * (shift(i) if shift else 1.0)
        new.append(make_result(model=f"m{i}", rng=rng, noise=0.01, p50=1000.0 * factor))
    return base, new


def test_run_to_run_noise_raises_the_limit_so_identical_runs_do_not_alarm():
    from harness.report.compare import Thresholds

    rng = np.random.default_rng(7)
    base, new = _noisy_runs(rng)
    without = compare_results(base, new, Thresholds(noise_factor=None))
    assert without.unconfirmed  # tight samples: Mann-Whitney calls process noise significant
    c = compare_results(base, new)
    assert not c.unconfirmed and not c.regressed and c.noise is not None and 0.02 < c.noise < 0.1
    assert c.latency_limit > 0.05


def test_a_real_regression_stands_out_of_the_noise():
    rng = np.random.default_rng(8)
    base, new = _noisy_runs(rng, shift=lambda i: 1.5 if i == 3 else 1.0)
    c = compare_results(base, new)
    assert [r.key[0] for r in c.unconfirmed] == ["m3"]
    # a slowdown of every row moves the centre of the changes, not their scatter
    base, new = _noisy_runs(rng, shift=lambda i: 1.4)
    assert len(compare_results(base, new).unconfirmed) >= 18


def test_speedup_is_an_improvement_and_small_changes_are_not_regressions():
    rng = np.random.default_rng(1)
    c = compare_results([make_result(rng=rng)], [make_result(rng=rng, p50=700.0)])
    assert c.rows[0].verdict == UNCONFIRMED and not c.rows[0].slower_unconfirmed
    assert not c.regressed and not compare_results([make_result(rng=rng)], [make_result(rng=rng, p50=700.0)],
                                                   Thresholds(unconfirmed="fail")).failed
    # 3 % slower, significant with many samples, but under the 5 % threshold
    c = compare_results([make_result(rng=rng, n=20_000)], [make_result(rng=rng, n=20_000, p50=1030.0)])
    assert c.rows[0].latency.significant and c.rows[0].verdict == SAME
    c = compare_results([make_result(rng=rng, n=20_000)], [make_result(rng=rng, n=20_000, p50=1030.0)],
                        Thresholds(max_latency_regression=0.02))
    assert c.rows[0].verdict == UNCONFIRMED


def test_bootstrap_ci_matches_brute_force_resampling():
    rng = np.random.default_rng(3)
    base = rng.lognormal(3, 0.3, 301)
    new = rng.lognormal(3, 0.3, 301) * 1.1
    change, low, high = median_change_ci(base, new, n_boot=4000)
    boot = [np.median(rng.choice(new, 301)) / np.median(rng.choice(base, 301)) - 1 for _ in range(4000)]
    blo, bhi = np.percentile(boot, [2.5, 97.5])
    assert change == pytest.approx(np.median(new) / np.median(base) - 1)
    assert low == pytest.approx(blo, abs=0.01) and high == pytest.approx(bhi, abs=0.01)
    assert low < change < high


def test_status_size_drift_accuracy_and_missing_rows():
    rng = np.random.default_rng(2)
    base = [make_result("a", rng=rng), make_result("b", rng=rng), make_result("c", rng=rng),
            make_result("d", rng=rng), make_result("e", rng=rng), make_result("f", rng=rng, status="runtime_failed")]
    new = [make_result("a", rng=rng, status="runtime_failed", reason="segfault"),
           make_result("b", rng=rng, size=60_000), make_result("c", rng=rng, max_abs=0.5),
           make_result("d", rng=rng, accuracy=0.7), make_result("f", rng=rng), make_result("g", rng=rng)]
    c = compare_results(base, new)
    by = {r.key[0]: r for r in c.rows}
    assert by["a"].verdict == REGRESSED and "ok -> runtime_failed (segfault)" in by["a"].regressions[0]
    assert by["b"].verdict == REGRESSED and "size" in by["b"].regressions[0]
    assert by["c"].verdict == SAME  # drift not gated by default
    assert by["d"].verdict == SAME
    assert by["e"].verdict == MISSING
    assert by["f"].verdict == IMPROVED
    assert by["g"].verdict == "new"
    c = compare_results(base, new, Thresholds(max_drift_increase=0.01, max_accuracy_drop=0.05,
                                              max_size_increase=None))
    by = {r.key[0]: r for r in c.rows}
    assert by["b"].verdict == SAME
    assert by["c"].verdict == REGRESSED and "max_abs" in by["c"].regressions[0]
    assert by["d"].verdict == REGRESSED and "accuracy 0.900 -> 0.700" in by["d"].regressions[0]
    assert "3 regressed" in c.summary()


def test_ignore_matches_rows_across_a_setting():
    rng = np.random.default_rng(4)
    base = [make_result(rng=rng, xnnpack=True)]
    new = [make_result(rng=rng, xnnpack=False, p50=2000.0)]
    assert {r.verdict for r in compare_results(base, new).rows} == {MISSING, "new"}
    c = compare_results(base, new, ignore=("xnnpack",))
    assert [r.verdict for r in c.rows] == [UNCONFIRMED]
    with pytest.raises(ValueError, match="several rows"):
        compare_results(base + [make_result(rng=rng, xnnpack=False)], new, ignore=("xnnpack",))


# ------------------------------------------------------------------ command line

def test_compare_cli_exit_codes_and_formats(tmp_path, capsys):
    rng = np.random.default_rng(5)
    base = [make_result("cnn", "fp32", rng=rng), make_result("cnn", "int8", rng=rng, p50=600.0, size=20_000)]
    same = [make_result("cnn", "fp32", rng=rng), make_result("cnn", "int8", rng=rng, p50=600.0, size=20_000)]
    slow = [make_result("cnn", "fp32", rng=rng), make_result("cnn", "int8", rng=rng, p50=800.0, size=20_000)]
    db = tmp_path / "s.sqlite"
    s, (a, b, c) = store_with_runs(db, base, same, slow)
    s.close()

    code, out, err = invoke(capsys, "compare", a, b, "--store", str(db))
    assert code == 0, out + err
    assert "no regressions" in out

    # stored results only (the synthetic artifacts are nowhere): a slowdown is unconfirmed, a warning
    code, out, err = invoke(capsys, "compare", a, c[:17], "--store", str(db), "--format", "md")
    assert code == 0, out + err
    first = out.splitlines()[0]
    assert "no regressions" in first and "1 unconfirmed" in first, first
    assert "| cnn | int8 |" in out and "latency p50 +3" in out and "not at hand" in out, out
    code, out, _ = invoke(capsys, "compare", a, c[:17], "--store", str(db), "--format", "md",
                          "--unconfirmed", "fail", "--no-confirm")
    assert code == 1 and "**FAILED**: 1 unconfirmed slowdown" in out.splitlines()[0]
    assert "stored results only" in out

    code, out, _ = invoke(capsys, "compare", a, c, "--store", str(db), "--max-latency-regression", "40%")
    assert code == 0, out

    code, out, _ = invoke(capsys, "compare", a, c, "--store", str(db), "--format", "json", "--unconfirmed", "fail")
    assert code == 1
    data = json.loads(out)
    assert data["regressed"] is False and data["failed"] is True and data["exit_code"] == 1
    row = next(r for r in data["rows"] if r["flag_set"] == "int8")
    assert row["verdict"] == UNCONFIRMED and row["latency"]["p_value"] < 0.01 and row["identity"] == "changed"
    assert len(row["latency"]["ci95"]) == 2

    # exported results.json files work as BASE / NEW
    f = tmp_path / "results.json"
    f.write_text(json.dumps([r.to_dict() for r in slow]))
    code, out, _ = invoke(capsys, "compare", a, str(f), "--store", str(db), "--format", "md", "--unconfirmed", "fail")
    assert code == 1 and str(f) in out.splitlines()[0]
    code, out, _ = invoke(capsys, "compare", str(tmp_path), str(f))  # a run folder holding results.json
    assert code == 0


def test_compare_cli_usage_errors(tmp_path, capsys):
    db = tmp_path / "s.sqlite"
    s, (a,) = store_with_runs(db, [make_result()])
    s.close()
    code, _, err = invoke(capsys, "compare", a, "nope", "--store", str(db))
    assert code == 2 and "no run 'nope'" in err and "tflite-harness runs" in err
    code, _, err = invoke(capsys, "compare", a, a, "--store", str(tmp_path / "missing.sqlite"))
    assert code == 2 and "no results store" in err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    code, _, err = invoke(capsys, "compare", str(bad), a, "--store", str(db))
    assert code == 2 and "not a results.json export" in err
    code, _, err = invoke(capsys, "compare", a, a, "--store", str(db), "--max-latency-regression", "fast")
    assert code == 2 and "percentage" in err
    code, _, err = invoke(capsys, "compare", a, "gone.json", "--store", str(db))
    assert code == 2 and "no such file" in err


# ------------------------------------------------------------------ end to end

def _report_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _ENTRY, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={"COLUMNS": "220", **__import__("os").environ})


@pytest.mark.slow
def test_compare_two_real_runs(tmp_path):
    """Same settings twice: no alarm; XNNPACK off (about 2x slower on a conv net): REGRESSED.

    Not `alone`: the stored latencies only nominate a change; the verdict is the compare's own
    confirmation, which re-measures base and new now, interleaved (A B, B A, ...), so the other
    worker's load falls on both sides alike. A stored shift from that load can at most be
    nominated, and its confirmation finds the same bytes and settings the same. 100 runs over
    0.3 s per row are plenty to nominate a 2x slowdown; one converter worker (one TensorFlow)."""
    common = ["--model", str(MODELS / "digits_mobilenet.keras"), "--flag-sets", "fp32", "--store",
              str(tmp_path / "s.sqlite"), "--cache-dir", str(tmp_path / "cache"), "--runs", "100",
              "--min-seconds", "0.3", "--eval-samples", "8", "--workers", "1"]
    ids = []
    for name, extra in (("a", []), ("b", []), ("c", ["--no-xnnpack"])):
        p = run_cli("run", *common, "--out", str(tmp_path / name), *extra)
        assert p.returncode == 0, p.stdout + p.stderr
        ids.append(json.loads(_report_cli("runs", "--store", str(tmp_path / "s.sqlite"), "--format",
                                          "json").stdout)[0]["id"])
    a, b, c = ids
    store = ["--store", str(tmp_path / "s.sqlite")]
    # Between two processes the median moves by up to ~10 % on a busy 2-core VM (a shift the
    # in-run test cannot see), so the no-false-alarm check uses a threshold above that noise.
    p = _report_cli("compare", a, b, *store, "--max-latency-regression", "25%")
    assert p.returncode == 0, p.stdout + p.stderr
    p = _report_cli("compare", a, c, *store, "--ignore", "xnnpack", "--max-latency-regression", "25%")
    assert p.returncode == 1, p.stdout + p.stderr
    # same bytes, XNNPACK off: a settings change, confirmed by re-measuring each row with its own settings
    assert "REGRESSED digits_mobilenet/fp32 on local" in p.stdout and "latency +" in p.stdout
    assert "confirmed" in p.stdout
    p = _report_cli("compare", a, c, *store, "--format", "md")  # without --ignore the rows do not match
    assert p.returncode == 1 and "**MISSING**" in p.stdout
    p = _report_cli("compare", str(tmp_path / "a" / "results.json"), b, *store, "--max-latency-regression", "25%")
    assert p.returncode == 0, p.stdout + p.stderr


# ------------------------------------------------------------------ the store path (columns + sample arrays)

def _mixed_runs(rng):
    """Rows with samples (many, few, tied), summary-only rows (benchmark_model: no samples),
    failed rows, rows only in one run: NEW is smaller than BASE and has one row of its own."""
    base, new = [], []
    for i in range(14):  # enough rows for the noise floor
        base.append(make_result(f"m{i}", rng=rng, n=60 + i))
        new.append(make_result(f"m{i}", rng=rng, n=40, p50=1000.0 * (1.3 if i == 2 else 0.7 if i == 5 else 1.0),
                               max_abs=0.5 if i == 3 else 1e-6, size=60_000 if i == 4 else 50_000))
    for i in range(3):  # few samples: scipy's exact test, one by one
        base.append(make_result(f"small{i}", rng=rng, n=5))
        new.append(make_result(f"small{i}", rng=rng, n=6, p50=3000.0))
    tied_b, tied_n = make_result("tied", rng=rng, n=30), make_result("tied", rng=rng, n=30, p50=1100.0)
    tied_b.samples_us = [round(v, -2) for v in tied_b.samples_us]
    tied_n.samples_us = [round(v, -2) for v in tied_n.samples_us]
    base.append(tied_b)
    new.append(tied_n)
    for i, p50 in enumerate((1000.0, 1500.0)):  # summary only
        b, n = make_result(f"bm{i}", rng=rng), make_result(f"bm{i}", rng=rng, p50=p50)
        b.samples_us, n.samples_us = [], []
        base.append(b)
        new.append(n)
    base += [make_result("broke", rng=rng), make_result("fixed", rng=rng, status="conversion_failed"),
             make_result("gone", rng=rng), make_result("bothfail", rng=rng, status="runtime_failed")]
    new += [make_result("broke", rng=rng, status="runtime_failed", reason="segfault"),
            make_result("fixed", rng=rng), make_result("bothfail", rng=rng, status="runtime_failed"),
            make_result("added", rng=rng)]
    return base, new


@pytest.mark.parametrize("extra", [[], ["--max-drift-increase", "0.01", "--noise-factor", "0"]])
def test_compare_on_a_store_gives_the_verdicts_of_full_results(tmp_path, capsys, extra):
    """The command reads report columns and sample arrays; the verdicts, numbers and exit code
    are those of compare_results on the full Results (JSON and samples decoded)."""
    from harness.report.compare_render import comparison_dict

    base, new = _mixed_runs(np.random.default_rng(11))
    db = tmp_path / "s.sqlite"
    s, (a, b) = store_with_runs(db, base, new)
    full = compare_results(s.results(a, samples=True), s.results(b, samples=True),
                           Thresholds(max_drift_increase=0.01 if extra else None, noise_factor=None if extra else 3.0))
    s.close()
    expected = json.loads(json.dumps(comparison_dict(full, a, b)))
    code, out, err = invoke(capsys, "compare", a, b, "--store", str(db), "--format", "json", "--no-confirm", *extra)
    assert code == (1 if full.failed else 0) == 1, err
    assert json.loads(out) == expected
    verdicts = {r["model"]: r["verdict"] for r in expected["rows"]}
    assert verdicts["m2"] == UNCONFIRMED and verdicts["m5"] == UNCONFIRMED and verdicts["gone"] == MISSING
    assert verdicts["broke"] == REGRESSED and verdicts["fixed"] == IMPROVED and verdicts["added"] == "new"
    assert verdicts["bm1"] == UNCONFIRMED  # aggregates only: a stored change, never a verdict alone
    assert verdicts["m3"] == (REGRESSED if extra else SAME)
    rows = {r["model"]: r for r in expected["rows"]}
    assert rows["bm1"]["latency"]["p_value"] is None and rows["small0"]["latency"]["p_value"] is not None
    # md and table read the same
    code, out, _ = invoke(capsys, "compare", a, b, "--store", str(db), "--format", "md", "--no-confirm", *extra)
    from harness.report.compare_markdown import comparison_markdown

    assert code == 1 and out == comparison_markdown(full, a, b)


def test_latency_stats_equal_the_row_by_row_statistics():
    from scipy.stats import mannwhitneyu

    from harness.report.compare import latency_stats

    rng = np.random.default_rng(12)
    pairs = [(rng.lognormal(3, 0.2, nb), rng.lognormal(3.05, 0.2, na))
             for nb, na in [(50, 50)] * 5 + [(3, 9), (9, 3), (8, 8), (200, 17), (50, 50)]]
    pairs.append((np.round(pairs[0][0]), np.round(pairs[0][1])))  # ties
    for (b, a), got in zip(pairs, latency_stats(pairs), strict=True):
        change, low, high = median_change_ci(b, a)
        p = float(mannwhitneyu(a, b, alternative="two-sided").pvalue)
        assert astuple(got) == (float(np.median(b)), float(np.median(a)), change, low, high, p)


def test_large_comparisons_use_the_plain_table_and_one_json_row_per_line(tmp_path, capsys, monkeypatch):
    import harness.report.table as table

    base, new = _mixed_runs(np.random.default_rng(13))
    db = tmp_path / "s.sqlite"
    s, (a, b) = store_with_runs(db, base, new)
    s.close()
    _, small_json, _ = invoke(capsys, "compare", a, b, "--store", str(db), "--format", "json")
    monkeypatch.setattr(table, "LARGE_TABLE_ROWS", 5)
    code, out, _ = invoke(capsys, "compare", a, b, "--store", str(db), "--format", "json")
    assert code == 1 and json.loads(out) == json.loads(small_json)
    assert len(out.splitlines()) > len(base) and out.count("\n") < len(small_json.splitlines())
    code, out, _ = invoke(capsys, "compare", a, b, "--store", str(db))
    assert code == 1
    assert "┃ model" in out and "p50 change [95% CI]" in out and f"{a} -> {b}" in out
    assert "REGRESSED broke/fp32 on local (1 thr): status ok -> runtime_failed (segfault)" in out
    assert "REGRESSED gone/fp32 on local (1 thr): missing in the new run" in out
