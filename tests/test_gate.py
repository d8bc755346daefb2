"""The regression gate's verdict classes, each with what it would get wrong without it.

Confirmation tests re-measure real .tflite files (tests/data) on the real local runtime in
fresh processes; the stored rows around them are synthetic (their latency is planted), so
each test knows what the truth is: a planted stored change that the artifacts do not have,
or a real difference in work (gate_wide does ~1000x the arithmetic of tiny).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from harness.core.hashing import hash_path
from harness.report.compare import (
    IMPROVED,
    REGRESSED,
    SAME,
    UNCONFIRMED,
    Thresholds,
    compare_results,
)

from .conftest import ROOT
from .test_compare import invoke, make_result, store_with_runs

DATA = ROOT / "tests" / "data"
TINY, WIDE = DATA / "tiny.tflite", DATA / "gate_wide.tflite"
# gate_wide's work with other weights: ~5 us an invoke, where tiny's ~1 us is mostly timer noise
WIDE_SAME_WORK = DATA / "gate_wide_same.tflite"
FAST = {"warmup_runs": 3, "runs": 20, "min_seconds": 0.1, "max_seconds": 5.0, "repeat": 1, "pin_cpu": None}


def real_row(path, p50, rng, **kw):
    """A stored row naming a real artifact (path + sha) with planted stored samples around p50."""
    r = make_result(rng=rng, p50=p50, artifact=hash_path(path), **kw)
    r.artifact_path, r.settings = str(path), dict(FAST)
    return r


# ------------------------------------------------------------------ 1. unchanged artifact, machine moved

def test_unchanged_artifacts_on_a_slower_machine_are_not_regressions():
    """Same bytes, runtime and settings: +27 % is the machine. Without artifact identity these
    three rows are large, significant slowdowns (unconfirmed, and REGRESSED under fail)."""
    rng = np.random.default_rng(21)
    base = [make_result(f"m{i}", rng=rng, p50=1000.0 * (i + 1), noise=0.02) for i in range(3)]
    new = []
    for i, b in enumerate(base):
        n = make_result(f"m{i}", rng=rng, p50=1270.0 * (i + 1) * (1 + 0.01 * i), noise=0.02, artifact=b.artifact)
        new.append(n)
    # a changed artifact beside them that moved like the machine (+30 %): not a change of its own
    base.append(make_result("changed", rng=rng, p50=500.0, noise=0.02))
    new.append(make_result("changed", rng=rng, p50=650.0, noise=0.02, size=50_001))
    c = compare_results(base, new, Thresholds(unconfirmed="fail", max_size_increase=None))
    by = {r.key[0]: r for r in c.rows}
    for i in range(3):
        assert by[f"m{i}"].verdict == SAME and by[f"m{i}"].identity == "same"
        assert "is the machine" in by[f"m{i}"].why
    assert c.machine is not None and c.machine.rows == 3 and 0.25 < c.machine.change < 0.30
    assert "3 unchanged artifacts moved +2" in c.summary() and "the machine was slower" in c.summary()
    lat = by["changed"].latency
    assert lat.change > 0.25 and abs(lat.adjusted) < 0.05  # the machine's move taken out
    assert by["changed"].verdict == SAME and not c.failed, by["changed"].why
    # the same figures with other artifacts everywhere: every row is a stored slowdown
    other = [make_result(r.model, rng=rng, p50=r.latency_us["p50"], noise=0.02, artifact="f" * 64) for r in new]
    c2 = compare_results(base, other, Thresholds(unconfirmed="fail", max_size_increase=None))
    assert c2.machine is None and c2.failed and len(c2.unconfirmed) == 4


def test_same_artifact_on_another_runtime_version_is_a_runtime_change():
    rng = np.random.default_rng(22)
    b = make_result(rng=rng, p50=1000.0)
    n = make_result(rng=rng, p50=1400.0, artifact=b.artifact)
    n.runtime_version = "2.0"
    row = compare_results([b], [n]).rows[0]
    assert row.identity == "runtime" and row.verdict == UNCONFIRMED and row.slower_unconfirmed
    assert "runtime ai_edge_litert 1.0 -> ai_edge_litert 2.0: latency p50 +" in row.why
    assert "another runtime" in row.why
    n.runtime_version = "1.0"
    assert compare_results([b], [n]).rows[0].verdict == SAME  # back to the same runtime: the machine
    # the same bytes matched across a setting or a device (--ignore) are not "the same artifact"
    off = make_result(rng=rng, p50=2000.0, artifact=b.artifact, xnnpack=False)
    assert compare_results([b], [off], ignore=("xnnpack",)).rows[0].identity == "settings"
    phone = make_result(rng=rng, p50=2000.0, artifact=b.artifact, device="adb:192.0.2.1:5555")
    row = compare_results([b], [phone], ignore=("device",)).rows[0]
    assert row.identity == "device" and "two devices" in row.why and row.verdict == UNCONFIRMED


# ------------------------------------------------------------------ 2-3. confirmed regression / improvement

def _gate(base, new, **kw):
    from harness.pipeline.confirm import gate

    return gate(base, new, Thresholds(), cache_dirs=(), **kw)


@pytest.mark.alone  # re-measures latency: another test's load would blur the confirmation
def test_a_real_slowdown_is_confirmed_and_a_planted_one_is_not():
    """Stored rows nominate both; re-measuring says which one the artifacts really have."""
    rng = np.random.default_rng(23)
    base = [real_row(TINY, 2.0, rng, model="wide"), real_row(WIDE, 10.0, rng, model="planted")]
    new = [real_row(WIDE, 2.6, rng, model="wide"), real_row(WIDE_SAME_WORK, 14.0, rng, model="planted")]
    c = _gate(base, new, rounds=4)
    by = {r.key[0]: r for r in c.rows}
    wide = by["wide"]
    assert wide.verdict == REGRESSED, wide.why
    assert wide.latency.confirmed.ci_low > 0.05 and "confirmed" in wide.why
    assert wide.remeasured.orders == ["AB", "BA", "AB", "BA"]  # the order alternates
    assert len(wide.remeasured.base_us) == len(wide.remeasured.base_medians_us) == 4
    assert wide.remeasured.error is None
    planted = by["planted"]  # +40 % in the stored rows, equal work in the files
    assert planted.verdict == SAME, planted.why
    assert "re-measured" in planted.why and abs(planted.latency.confirmed.change) < 0.5
    assert not c.failed or c.regressed == [wide]
    assert c.confirm_rounds == 4 and c.confirm_seconds > 0


@pytest.mark.alone  # re-measures latency
def test_a_real_speedup_is_a_confirmed_improvement():
    rng = np.random.default_rng(24)
    c = _gate([real_row(WIDE, 5.0, rng)], [real_row(TINY, 3.0, rng)], rounds=3)
    row = c.rows[0]
    assert row.verdict == IMPROVED and row.latency.confirmed.ci_high < 0 and "confirmed" in row.why, row.why
    assert not c.failed


# ------------------------------------------------------------------ 4. unconfirmed

def test_without_confirmation_or_artifacts_a_change_is_unconfirmed():
    rng = np.random.default_rng(25)
    base, new = [real_row(TINY, 2.0, rng)], [real_row(WIDE, 3.0, rng)]
    off = _gate(base, new, confirm=False)
    assert off.rows[0].verdict == UNCONFIRMED and "stored results only" in off.rows[0].why
    assert off.rows[0].remeasured is None and not off.failed
    gone = [real_row(WIDE, 3.0, rng)]
    gone[0].artifact_path = str(DATA / "nowhere.tflite")
    missing = _gate(base, gone)  # confirmation asked for, the new artifact is not at hand
    row = missing.rows[0]
    assert row.verdict == UNCONFIRMED and "not at hand" in row.why and row.remeasured.rounds == 0
    unreachable = _gate(base, new, opener=_refuse)
    assert "unreachable" in unreachable.rows[0].why and unreachable.rows[0].verdict == UNCONFIRMED
    strict = _gate(base, new, confirm=False).thresholds
    assert strict.unconfirmed == "warn"


def _refuse(name):
    raise ConnectionRefusedError(f"{name}: connection refused")


# ------------------------------------------------------------------ 5. deterministic

def test_deterministic_changes_need_no_confirmation():
    """Size, status and accuracy are exact: a regression without re-measuring, even on a row
    whose latency is only the machine's."""
    rng = np.random.default_rng(26)
    b = make_result(rng=rng, size=50_000, accuracy=0.9)
    n = make_result(rng=rng, size=80_000, accuracy=0.7)
    from harness.pipeline.confirm import gate

    c = gate([b], [n], Thresholds(max_accuracy_drop=0.05), confirm=True, cache_dirs=(), opener=_refuse)
    row = c.rows[0]
    assert row.verdict == REGRESSED and c.failed
    assert any("size 50000 -> 80000" in x for x in row.regressions)
    assert any("accuracy 0.900 -> 0.700" in x for x in row.regressions)
    assert row.remeasured is None  # nothing was re-measured for it


# ------------------------------------------------------------------ CI formats

def test_junit_md_and_json_for_ci(tmp_path, capsys):
    import json

    rng = np.random.default_rng(27)
    base = [make_result("cnn", "fp32", rng=rng), make_result("cnn", "int8", rng=rng, p50=600.0, size=20_000),
            make_result("cnn", "dr", rng=rng, size=30_000)]
    new = [make_result("cnn", "fp32", rng=rng, artifact=base[0].artifact),
           make_result("cnn", "int8", rng=rng, p50=900.0, size=20_000),
           make_result("cnn", "dr", rng=rng, size=40_000)]
    db = tmp_path / "s.sqlite"
    s, (a, b) = store_with_runs(db, base, new)
    s.close()
    code, out, _ = invoke(capsys, "compare", a, b, "--store", str(db), "--format", "junit", "--no-confirm")
    assert code == 1
    root = ET.fromstring(out)
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == 3
    by = {c.get("name").split(" ")[0]: c for c in cases}
    assert by["dr"].find("failure") is not None and "size" in by["dr"].find("failure").get("message")
    assert by["int8"].find("skipped") is not None and "unconfirmed" in by["int8"].find("skipped").get("message")
    assert by["fp32"].find("failure") is None and by["fp32"].find("skipped") is None
    assert root.find("testsuite").get("failures") == "1" and root.find("testsuite").get("tests") == "3"
    code, out, _ = invoke(capsys, "compare", a, b, "--store", str(db), "--format", "junit", "--no-confirm",
                          "--unconfirmed", "fail")
    by = {c.get("name").split(" ")[0]: c for c in ET.fromstring(out).findall("./testsuite/testcase")}
    assert code == 1 and by["int8"].find("failure") is not None
    code, out, _ = invoke(capsys, "compare", a, b, "--store", str(db), "--format", "md", "--no-confirm")
    first = out.splitlines()[0]
    assert code == 1 and "REGRESSED" in first and "1 regressed (cnn/dr size" in first and "1 unconfirmed" in first
    assert "1 unchanged artifact moved" in first
    code, out, _ = invoke(capsys, "compare", a, b, "--store", str(db), "--format", "json", "--no-confirm")
    data = json.loads(out)
    assert code == 1 and data["exit_code"] == 1 and data["machine"]["rows"] == 1
    assert {r["flag_set"]: r["identity"] for r in data["rows"]} == {"fp32": "same", "int8": "changed",
                                                                  "dr": "changed"}


# ------------------------------------------------------------------ memory measures the model

@pytest.mark.alone  # its sample counts follow the free CPU
def test_memory_does_not_grow_with_the_number_of_timed_samples(tmp_path):
    """A 2 KB model timed for 0.2 s and for 1.5 s (~7x the samples). Before, the samples' Python
    list was inside the measured window: 5.1 MiB vs 13.3 MiB here (43k vs 249k samples). Now the two peaks
    may differ by at most 1 MiB (allocator noise), and init memory is reported too."""
    from harness.devices.base import MeasureJob
    from harness.devices.local import LocalDevice

    np.savez(tmp_path / "in.npz", **{"0": np.random.default_rng(0).random((2, 8), dtype=np.float32)})
    peaks, counts = [], []
    for seconds in (0.2, 1.5):
        job = MeasureJob(TINY, "x", tmp_path / "in.npz", ["x"], threads=1, xnnpack=True, warmup_runs=5, runs=10,
                         min_seconds=seconds, max_seconds=10, timeout_s=60)
        m = LocalDevice().measure(job)
        assert m.status == "ok", m.reason
        peaks.append(m.report.peak_rss_delta_kb)
        counts.append(len(m.report.samples_us))
        assert m.report.init_rss_delta_kb is not None and m.report.init_rss_delta_kb <= m.report.peak_rss_delta_kb
    assert counts[1] > 3 * counts[0]
    assert abs(peaks[1] - peaks[0]) <= 1024, (peaks, counts)
    assert not math.isnan(peaks[0])


# ------------------------------------------------------------------ the Python API and the pytest plugin

def test_the_gate_from_python_and_from_the_pytest_fixture(tmp_path):
    import pytest

    import harness
    from harness.pytest_plugin import HarnessFixture

    rng = np.random.default_rng(28)
    base = [make_result("cnn", "int8", rng=rng, size=20_000)]
    same = [make_result("cnn", "int8", rng=rng, size=20_000, artifact=base[0].artifact)]
    bigger = [make_result("cnn", "int8", rng=rng, size=26_000)]
    db = tmp_path / "s.sqlite"
    s, (a, b, c) = store_with_runs(db, base, same, bigger)
    s.close()
    assert not harness.compare(a, b, store=db).failed  # run ids, as the CLI takes them
    assert harness.compare(a, c, store=db, confirm=False).failed
    assert harness.compare(base, same, cache_dirs=()).rows[0].identity == "same"  # rows, too
    fixture = HarnessFixture(tmp_path, tmp_path / "cache")
    assert fixture.assert_no_regression(base, same).rows[0].identity == "same"
    with pytest.raises(pytest.fail.Exception, match="size 20000 -> 26000"):
        fixture.assert_no_regression(base, bigger)
    fixture.assert_no_regression(base, bigger, max_size_increase=0.5)  # a Thresholds field
