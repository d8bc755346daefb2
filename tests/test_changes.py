"""`changes`: exact figures at their run, machine-corrected latency change points and their causes.

Stores here are written through the real Store API with planted figures (so each test knows
the truth); the real-run history is tests/test_changes_real.py.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from harness.core.result import Result
from harness.report.changes import (
    BYTES,
    MACHINE,
    NO_ARTIFACT_CHANGE,
    RUNTIME,
    TOOLS,
    ChangesOptions,
    analyse,
)
from harness.report.changes_data import read_series
from harness.report.edivisive import change_points, split_p_value
from harness.store import Store

SETTINGS = {"warmup_runs": 3, "runs": 20, "min_seconds": 0.1, "max_seconds": 5.0, "repeat": 1, "pin_cpu": None}


def row(j: int, p50: float, *, sha: str = "a", size: int = 40_000, version: str = "2.3.0", tf: str = "2.21.0",
        status: str = "ok") -> Result:
    return Result(model=f"m{j}", flag_set="fp32", device="local", threads=1, status=status, runtime="ai_edge_litert",
                  runtime_version=version, artifact=f"{j}{sha}".ljust(64, "0"), size_bytes=size,
                  latency_us={"p50": p50} if status == "ok" else None, settings=SETTINGS,
                  tool_versions={"tensorflow": tf}, plan_index=j)


def write_history(path, runs: int, rows: int, figure, seed: int = 0) -> list[str]:
    """`figure(i, j, rng)` -> the Result of row j in run i. Returns the run ids, oldest first."""
    rng = np.random.default_rng(seed)
    s = Store(path)
    ids = []
    for i in range(runs):
        run_id = f"night-{i:02d}"
        s.start_run(run_id, campaign="nightly", campaign_path=None, tool_versions={}, config={}, out_dir="")
        s.add_results(run_id, [figure(i, j, rng) for j in range(rows)])
        s.finish_run(run_id)
        ids.append(run_id)
    s.close()
    return ids


def noisy(rng, p50: float, noise: float = 0.02) -> float:
    return p50 * math.exp(noise * rng.standard_normal())


def report_of(path, **kw):
    s = Store(path)
    try:
        return analyse(read_series(s), ChangesOptions(**kw))
    finally:
        s.close()


# ------------------------------------------------------------------ the method

def test_edivisive_finds_a_step_and_leaves_flat_series_alone():
    rng = np.random.default_rng(1)
    step = np.r_[np.zeros(30), np.full(30, 0.08)] + 0.02 * rng.standard_normal(60)
    flat = [0.02 * rng.standard_normal(60) for _ in range(40)]
    found = change_points([step, *flat])
    assert [c.index for c in found[0]] and abs(found[0][0].index - 30) <= 2 and found[0][0].p_value < 0.05
    assert sum(len(f) for f in found[1:]) <= 6  # alpha 0.05 per tested segment: a few, not many


def test_one_pinned_split_is_exact_on_short_histories():
    x = np.array([1.0, 1.1, 0.9, 5.0, 5.2, 4.9, 5.1, 5.3])
    assert split_p_value(x, 3) == pytest.approx(2 / 56)  # the split and its mirror, of C(8, 3)
    assert split_p_value(np.array([1.0, 5.0, 1.1, 5.2, 0.9, 4.9, 5.1, 5.0]), 3) > 0.3


# ------------------------------------------------------------------ causes

def test_bytes_change_at_its_exact_run_with_the_latency_step_and_machine_steps_removed(tmp_path):
    path = tmp_path / "s.sqlite"
    machine = [1.0] * 10 + [1.10] * 10 + [0.92] * 10  # two steps every row takes together

    def figure(i, j, rng):
        changed = j == 3 and i >= 17
        return row(j, noisy(rng, 1000.0 * (j + 1) * machine[i] * (1.10 if changed else 1.0)),
                   sha="b" if changed else "a", size=41_000 if changed else 40_000)

    ids = write_history(path, 30, 12, figure)
    rep = report_of(path)
    lat = [c for c in rep.latency if c.key[0] == "m3"]
    assert len(lat) == 1 and lat[0].run_id == ids[17] and lat[0].cause == BYTES and lat[0].regression
    assert 0.06 < lat[0].change < 0.14 and lat[0].ci_low > 0
    assert not [c for c in rep.latency if c.key[0] != "m3" and c.regression]  # the machine is no regression
    assert {(m.run_id, m.change > 0) for m in rep.machine} == {(ids[10], True), (ids[20], False)}
    exact = {(e.key[0], e.figure, e.run_id) for e in rep.exact}
    assert exact == {("m3", "artifact", ids[17]), ("m3", "size", ids[17])}
    size = next(e for e in rep.exact if e.figure == "size")
    assert size.worse and size.causes == [BYTES] and "40000 B" in size.old
    assert rep.failed and list(rep.failures()) == [("m3", "fp32", "local", 1, True)]
    # without the correction the machine's steps would be change points of every row
    assert len({c.key for c in rep.latency}) <= 3
    # --model m3: the other rows still correct the machine, so the figures are the same
    s = Store(path)
    only = analyse(read_series(s, model="m3"), ChangesOptions())
    s.close()
    assert [c.key[0] for c in only.latency] == ["m3"] and only.latency[0].change == pytest.approx(lat[0].change)
    assert [m.run_id for m in only.machine] == [m.run_id for m in rep.machine]
    from harness.report.changes_render import marks_for

    runs = {r.id: r.started_at for r in rep.data.runs}
    marks = {m["when"]: m for m in marks_for(rep, "m3", "fp32")}
    assert "(bytes)" in marks[runs[ids[17]]]["text"] and "size" in marks[runs[ids[17]]]["text"]
    assert marks[runs[ids[10]]]["text"].startswith("machine +") and "color" in marks[runs[ids[10]]]


def test_runtime_tools_and_unexplained_causes(tmp_path):
    path = tmp_path / "s.sqlite"

    def figure(i, j, rng):
        version = "2.4.0" if j == 0 and i >= 15 else "2.3.0"
        tf = "2.22.0" if j == 1 and i >= 15 else "2.21.0"
        slower = 1.15 if j in (0, 1, 2) and i >= 15 else 1.0  # row 2: same artifact, moved alone
        return row(j, noisy(rng, 2000.0 * slower), version=version, tf=tf)

    ids = write_history(path, 30, 10, figure, seed=3)
    rep = report_of(path)
    by = {}
    for c in rep.latency:
        by.setdefault(c.key[0], c)  # the first change point of each row
    assert by["m0"].cause == RUNTIME and by["m0"].run_id == ids[15] and by["m0"].regression
    assert by["m1"].cause == TOOLS and "tensorflow 2.21.0 -> 2.22.0" in by["m1"].also
    assert not by["m1"].regression  # same bytes, runtime and settings: the new TensorFlow computes nothing here
    assert by["m2"].cause == NO_ARTIFACT_CHANGE and not by["m2"].regression  # never the conversion's
    assert abs(by["m2"].run - 15) <= 2


def test_status_drop_is_worse_and_a_later_recovery_clears_the_gate(tmp_path):
    path = tmp_path / "s.sqlite"
    ids = write_history(path, 8, 3, lambda i, j, rng: row(j, noisy(rng, 900.0),
                                                          status="crashed" if j == 1 and i >= 5 else "ok"))
    rep = report_of(path)
    (e,) = [e for e in rep.exact if e.figure == "status"]
    assert (e.old, e.new, e.worse, e.run_id) == ("ok", "crashed", True, ids[5]) and rep.failed
    ids2 = write_history(tmp_path / "t.sqlite", 8, 3, lambda i, j, rng: row(
        j, noisy(rng, 900.0), status="crashed" if j == 1 and 3 <= i < 5 else "ok"))
    rep2 = report_of(tmp_path / "t.sqlite")
    assert [e.run_id for e in rep2.exact] == [ids2[3], ids2[5]] and not rep2.failed


# ------------------------------------------------------------------ the command

@pytest.fixture(scope="module")
def stepped(tmp_path_factory):
    path = tmp_path_factory.mktemp("changes") / "s.sqlite"

    def figure(i, j, rng):
        changed = j == 2 and i >= 12
        return row(j, noisy(rng, 500.0 * (j + 1) * (1.2 if changed else 1.0)), sha="b" if changed else "a",
                   size=40_000)

    return path, write_history(path, 20, 6, figure, seed=5)


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """The CLI in this process (each subprocess costs seconds of imports on a loaded machine)."""
    from harness.cli.main import main

    try:
        main(list(args))
        rc = 0
    except SystemExit as exc:
        rc = exc.code or 0
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_gate_md_junit_json_and_html(stepped, tmp_path, capsys):
    path, ids = stepped
    rc, out, err = cli(capsys, "changes", "--store", str(path))
    assert rc == 0, err  # --fail-on never (the default)
    assert "REGRESSED m2/fp32 on local (1 thr): latency +" in out and ids[12] in out
    rc, md, _ = cli(capsys, "changes", "--store", str(path), "--format", "md", "--fail-on", "regression")
    assert rc == 1 and md.startswith("**tflite-harness changes**: REGRESSED")
    line = next(x for x in md.splitlines() if x.startswith(f"| {ids[12]} | m2/fp32") and "latency" in x)
    assert "| bytes |" in line and "REGRESSED" in line
    rc, _, _ = cli(capsys, "changes", "--store", str(path), "--format", "junit", "--out", str(tmp_path / "j.xml"))
    suite = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    assert rc == 0 and suite.get("tests") == "6" and suite.get("failures") == "1"
    (failed,) = [c for c in suite.iter("testcase") if c.find("failure") is not None]
    assert failed.get("classname") == "tflite-harness.m2"
    data = json.loads(cli(capsys, "changes", "--store", str(path), "--format", "json", "--model", "m2")[1])
    assert [r["id"] for r in data["runs"]] == ids and data["failed"] is True
    assert data["runs"][12]["introduced"] and not data["runs"][11]["introduced"]
    page = tmp_path / "c.html"
    rc, _, err = cli(capsys, "changes", "--store", str(path), "--format", "html", "--out", str(page))
    text = page.read_text()
    assert rc == 0 and 'id="changes-summary"' in text and "<svg" in text, err
    assert "p50 +" in text and "(bytes)" in text  # the change point marked on the m2 trend
    rc, _, err = cli(capsys, "history", "m2", "fp32", "--store", str(path), "--format", "html", "--out",
                     str(tmp_path / "h.html"))
    assert rc == 0 and "(bytes)" in (tmp_path / "h.html").read_text(), err


def test_cli_runs_lists_what_each_run_introduced(stepped, capsys):
    path, ids = stepped
    rc, out, _ = cli(capsys, "runs", "--store", str(path), "--changes", "--format", "json")
    items = {i["id"]: i for i in json.loads(out)}
    assert rc == 0 and any("m2/fp32" in t for t in items[ids[12]]["changes"])
    assert items[ids[5]]["changes"] == []


def test_cli_usage_errors(stepped, tmp_path, capsys):
    path, _ = stepped
    for args, words in ((["--model", "nope"], "no stored rows for model 'nope'"),
                        (["--last", "1"], "--last"),
                        (["--max-latency-regression", "x"], "give a percentage")):
        rc, _, err = cli(capsys, "changes", "--store", str(path), *args)
        assert rc == 2 and words in err and "Traceback" not in err, err
    rc, _, err = cli(capsys, "changes", "--store", str(tmp_path / "empty.sqlite"))
    assert rc == 2 and "no results store at" in err


def test_machine_step_alone_is_machine(tmp_path):
    path = tmp_path / "s.sqlite"
    ids = write_history(path, 16, 8, lambda i, j, rng: row(j, noisy(rng, 700.0 * (1.3 if i >= 8 else 1.0), 0.01)))
    rep = report_of(path)
    assert [(m.run_id, m.rows) for m in rep.machine] == [(ids[8], 8)] and MACHINE == "machine"
    assert not rep.latency and not rep.failed


def test_a_night_every_artifact_changed_keeps_the_machine_level(tmp_path):
    """One night every row ran another artifact (a converter tried and reverted): no unchanged
    artifact spans that run, and the machine level (+20 % since run 4) must carry over it, not
    fall back to the first run's (which would read as a -17 % step of every row)."""
    from harness.report.changes import machine_moves

    path = tmp_path / "s.sqlite"
    ids = write_history(path, 16, 8, lambda i, j, rng: row(
        j, noisy(rng, 800.0 * (1.2 if i >= 4 else 1.0), 0.01), sha="c" if i == 10 else "a"))
    s = Store(path)
    data = read_series(s)
    s.close()
    level, steps = machine_moves(data, 0.05)
    assert [m.run_id for m in steps] == [ids[4]]
    assert level["local"][10] == pytest.approx(level["local"][9])
    assert 0.15 < math.expm1(level["local"][9]) < 0.25
    rep = analyse(data, ChangesOptions())
    assert {e.run_id for e in rep.exact} == {ids[10], ids[11]} and all(e.causes == [BYTES] for e in rep.exact)
