"""`changes` on a real history: eight real runs of two tiny .tflite models on the local LiteRT
runtime, one store, one cache. Between run 3 and run 4 model `a`'s file is replaced by an
artifact that does ~1000x the arithmetic (tests/data/gate_wide.tflite): other bytes and a
real slowdown. Model `b` never changes: it is the control the machine correction uses.
`changes` must name run 4 and row `a`, with the cause "bytes", and leave `b` alone.
"""

from __future__ import annotations

import json
import shutil

import pytest

from .conftest import ROOT, run_cli

pytestmark = pytest.mark.slow
DATA = ROOT / "tests" / "data"
RUNS = 8  # 3 before the change, 5 after: the pinned split's exact test can reach p = 2/56


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    from harness import api

    d = tmp_path_factory.mktemp("nightly")
    a, b = d / "a.tflite", d / "b.tflite"
    shutil.copyfile(DATA / "tiny.tflite", a)
    shutil.copyfile(DATA / "tiny.tflite", b)
    ids = []
    for i in range(1, RUNS + 1):
        if i == 4:
            shutil.copyfile(DATA / "gate_wide.tflite", a)
        c = api.make_campaign(models=[a, b], runs=5, min_seconds=0.01, warmup_runs=1, eval_samples=2)
        summary = api.open_run(c, out=d / f"run{i}", store=d / "s.sqlite", cache_dir=d / "cache", workers=1).execute()
        assert [r.status for r in summary.results] == ["ok", "ok"], [r.reason for r in summary.results]
        ids.append(summary.run_id)
    return d / "s.sqlite", ids


def test_changes_names_the_run_and_row_with_cause_bytes(history):
    store, ids = history
    out = run_cli("changes", "--store", str(store), "--format", "json", "--fail-on", "regression")
    assert out.returncode == 1, out.stderr  # the slowdown is a regression
    data = json.loads(out.stdout)
    latency = [c for c in data["latency"] if c["key"][0] == "a"]
    assert len(latency) == 1, latency
    cp = latency[0]
    assert cp["run_id"] == ids[3] and cp["cause"] == "bytes" and cp["regression"] and cp["change"] > 0.5
    exact = {(e["key"][0], e["figure"], e["run_id"], e["causes"][0]) for e in data["exact"]}
    assert ("a", "artifact", ids[3], "bytes") in exact and ("a", "size", ids[3], "bytes") in exact
    assert not [e for e in data["exact"] if e["key"][0] == "b"]
    assert not [c for c in data["latency"] if c["key"][0] == "b" and c["regression"]]
    assert [f["key"][0] for f in data["failures"]] == ["a"]
    assert any("a/as_given" in t for t in data["runs"][3]["introduced"])
