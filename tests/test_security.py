"""Security: hostile names, pickles, the ADB key, the device sandbox, and no network at run time.

* Model names and file names like `a; touch pwned`, `$(touch pwned)`, quotes and spaces run
  through local and a simulated device: nothing executes, rows are fine, and the names are
  escaped in results.md (pipes), results.csv and the HTML report (`<script>`).
* `numpy.load` never unpickles: an npz whose object array would create a marker file when
  unpickled is refused with a clear line, and the marker never appears.
* The ADB private key is mode 0600 and never printed or stored (stdout, results, SQLite).
* Remote files stay inside /data/local/tmp/tflite-harness on the device.
* A campaign runs inside a network namespace with no interfaces (`unshare -n`).
"""

from __future__ import annotations

import base64
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support.adb_device import SimulatedAdbDevice

from .conftest import ROOT, run_cli

TINY = ROOT / "tests" / "data" / "tiny.tflite"
FAST = ["--runs", "3", "--min-seconds", "0", "--eval-samples", "4"]

HOSTILE = [
    "a; touch pwned_semicolon",
    "$(touch pwned_dollar)",
    "`touch pwned_backtick`",
    "it's \"quoted\" & spaced",
    "x|y <script>alert(1)</script>",
]


class Boom:
    """Unpickling this creates a marker file: proof that a pickle ran."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def pickled_npz(path: Path, marker: Path) -> Path:
    arr = np.empty(4, dtype=object)
    for i in range(4):
        arr[i] = Boom(str(marker))
    np.savez(path, x=arr)
    return path


def test_load_arrays_never_unpickles(tmp_path):
    from harness.core.samples import SampleError, load_arrays

    marker = tmp_path / "PWNED"
    path = pickled_npz(tmp_path / "evil.npz", marker)
    with pytest.raises(SampleError, match="pickled objects, which are never loaded"):
        load_arrays(path, ["x"])
    np.save(tmp_path / "evil.npy", np.array([Boom(str(marker))], dtype=object), allow_pickle=True)
    with pytest.raises(SampleError, match="pickled objects"):
        load_arrays(tmp_path / "evil.npy", ["x"])
    assert not marker.exists()
    # and the payload is real: unpickling it on purpose does create the marker
    with np.load(path, allow_pickle=True) as d:
        d["x"]
    assert marker.exists()


def test_pickled_samples_through_the_cli_are_refused(tmp_path):
    marker = tmp_path / "PWNED"
    pickled_npz(tmp_path / "evil.npz", marker)
    proc = run_cli("run", "--model", str(TINY), "--samples", str(tmp_path / "evil.npz"), "--out",
                   str(tmp_path / "run"), "--store", str(tmp_path / "s.sqlite"), "--cache-dir",
                   str(tmp_path / "cache"), *FAST, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    row = json.loads((tmp_path / "run" / "results.json").read_text())[0]
    assert row["status"] == "input_error" and "never loaded" in row["reason"]  # sample data, not the model
    assert not marker.exists()


def _key_body(key: Path) -> list[str]:
    """Chunks of the private key's base64 body: none may appear anywhere we write."""
    text = key.read_text()
    body = "".join(ln for ln in text.splitlines() if ln and not ln.startswith("-----"))
    raw = base64.b64decode(body)
    return [body[i:i + 40] for i in range(0, len(body) - 40, 200)] + [raw[40:80].hex()]


@pytest.mark.slow
def test_hostile_names_on_local_and_device_key_and_sandbox(tmp_path):
    from harness.devices.adb.transport import load_signers

    work = tmp_path / "work"
    work.mkdir()
    lines = ['name = "hostile"', "[settings]", "runs = 3", "min_seconds = 0", "eval_samples = 4"]
    for name in HOSTILE:
        f = work / f"{name.replace('/', '_')}.tflite"  # the file name is hostile too
        shutil.copyfile(TINY, f)
        lines += ["[[models]]", f"name = {json.dumps(name)}", f"path = {json.dumps(f.name)}"]
    (work / "c.toml").write_text("\n".join(lines) + "\n")

    home = tmp_path / "android"
    old = os.environ.get("ANDROID_USER_HOME")
    os.environ["ANDROID_USER_HOME"] = str(home)
    try:
        _signers, key = load_signers()
    finally:
        os.environ.pop("ANDROID_USER_HOME") if old is None else os.environ.__setitem__("ANDROID_USER_HOME", old)
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    env = {"ANDROID_USER_HOME": str(home), "HOME": str(tmp_path)}
    with SimulatedAdbDevice(tmp_path / "dev", authorized_keys=[str(key) + ".pub"]) as dev:
        name = f"adb:{dev.serial}"
        proc = run_cli("run", str(work / "c.toml"), "--devices", f"local,{name}", "--out", str(tmp_path / "run"),
                       "--store", str(tmp_path / "s.sqlite"), "--cache-dir", str(tmp_path / "cache"),
                       cwd=work, env=env, timeout=300)
        commands = list(getattr(dev, "commands", []))
        html = run_cli("report", "--format", "html", "--store", str(tmp_path / "s.sqlite"), "--out",
                       str(tmp_path / "report.html"), cwd=work, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((tmp_path / "run" / "results.json").read_text())
    assert {r["model"] for r in rows} == set(HOSTILE)
    for r in rows:
        assert r["status"] == "ok", (r["model"], r["device"], r["reason"])
    # nothing executed: no marker anywhere (campaign folder, device root, repository, cwd)
    for where in (tmp_path, ROOT, Path.cwd()):
        assert not list(where.glob("pwned*")) and not list(where.glob("**/pwned_*")), where
    assert not any("touch pwned" in c for c in commands)

    # escaped in the reports
    md = (tmp_path / "run" / "results.md").read_text()
    assert "x\\|y" in md and "x|y <script>" not in md
    with open(tmp_path / "run" / "results.csv", newline="") as f:
        assert set(HOSTILE) <= {r["model"] for r in csv.DictReader(f)}
    assert html.returncode == 0, html.stderr[-2000:]
    page = (tmp_path / "report.html").read_text()
    assert "<script>alert(1)</script>" not in page

    # the device: everything we wrote is inside the harness folder
    root = (tmp_path / "dev").resolve()
    ours = root / "data" / "local" / "tmp" / "tflite-harness"
    stray = [p for p in root.rglob("*") if p.is_file() and ours not in p.parents
             and (root / "system") not in p.parents]
    assert stray == [], stray

    # the private key is never printed nor stored
    outputs = proc.stdout + proc.stderr + (tmp_path / "run" / "results.json").read_text() + \
        (tmp_path / "run" / "results.jsonl").read_text() + md
    blob = (tmp_path / "s.sqlite").read_bytes()
    for chunk in _key_body(key):
        assert chunk not in outputs and chunk.encode() not in blob


def test_a_campaign_runs_without_any_network(tmp_path):
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-n", "true"]).returncode != 0:
        pytest.skip("unshare -n is unavailable here (needs root or user namespaces)")
    args = ["unshare", "-n", sys.executable, "-m", "harness.cli", "run", "--model", str(TINY),
            "--out", str(tmp_path / "run"), "--store", str(tmp_path / "s.sqlite"), "--cache-dir",
            str(tmp_path / "cache"), *FAST]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads((tmp_path / "run" / "results.json").read_text())
    assert [r["status"] for r in rows] == ["ok"]


def test_no_urls_are_fetched_at_run_time():
    """The package names no http(s) endpoint outside docs, help texts and comments."""
    import re

    hits = []
    for path in (ROOT / "harness").rglob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"https?://", line) and not line.lstrip().startswith("#"):
                hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    allowed = ("cdn", "docs", "ai.google.dev", "github.com", "tensorflow.org", "w3.org", "plotly",
               "://127.0.0.1")  # loopback (the private Ray instance's dead proxy) is not a fetch
    suspicious = [h for h in hits if not any(a in h for a in allowed)]
    assert suspicious == [], suspicious
