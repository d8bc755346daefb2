"""Durability: kill -9 at random moments, Ctrl-C, and resume, with nothing lost.

A small campaign (digits_cnn x 3 flag sets + a .tflite, x 2 thread counts = 8 rows) runs
as a subprocess in its own process group and is SIGKILLed at seeded random moments. After
each kill: the SQLite store passes `PRAGMA integrity_check`, every row the run reported done
(results.jsonl) is in the store, no converter worker outlives its parent, and
`run --resume RUN` runs only what is missing: no duplicates, the planned row count, and the
rows stored before the kill unchanged.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from array import array
from pathlib import Path

import pytest

from .conftest import MODELS, ROOT, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.cost(80)]  # seconds on one quiet core, for the xdist order (docs/testing.md)

TINY = ROOT / "tests" / "data" / "tiny.tflite"
PLANNED = (3 + 1) * 2
CAMPAIGN = ["--model", str(MODELS / "digits_cnn.keras"), "--model", str(TINY),
            "--flag-sets", "fp32,dynamic_range,float16", "--threads", "1,2",
            "--runs", "3", "--min-seconds", "0.3", "--eval-samples", "4", "--workers", "1"]
# one converter worker, for the killed runs and their resumes: a kill needs a converter worker to
# orphan, not two of them (each one TensorFlow import, ~7 CPU-s, per cold run and per resume)
WORKERS = ["--workers", "1"]


def tagged_processes(tag: str) -> list[tuple[int, str]]:
    """Live processes started with TFLITE_HARNESS_TEST_TAG=tag in their environment."""
    found = []
    needle = f"TFLITE_HARNESS_TEST_TAG={tag}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            if needle not in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                continue
            status = Path(f"/proc/{entry}/status").read_text()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "State:\tZ" not in status:
            found.append((int(entry), cmd))
    return found


def wait_gone(tag: str, timeout: float) -> list[tuple[int, str]]:
    deadline = time.monotonic() + timeout
    while (left := tagged_processes(tag)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def start(args: list[str], tag: str) -> subprocess.Popen:
    env = {**os.environ, "COLUMNS": "200", "TFLITE_HARNESS_TEST_TAG": tag}
    return subprocess.Popen([sys.executable, "-m", "harness.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=_as_from_a_terminal)


def _as_from_a_terminal() -> None:
    """In the child before exec: SIGINT delivered and handled, as for a command typed in a shell,
    whatever an earlier test in this worker process left in its signal state."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _signal_state(pid: int) -> str:
    """The Sig* lines of /proc/PID/status (blocked, ignored, caught), for a failure message."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return "gone"
    return " ".join(x.replace("\t", "") for x in lines if x.startswith(("SigBlk", "SigIgn", "SigCgt")))


def stored(store: Path) -> dict[tuple, dict]:
    db = sqlite3.connect(store)
    try:
        rows = db.execute(
            "SELECT run_id, model, flag_set, device, threads, xnnpack, data, samples FROM results").fetchall()
    finally:
        db.close()
    out = {}
    for r in rows:
        data = json.loads(r[6])
        if r[7] is not None:  # schema 2 keeps the raw samples in their own column
            data["samples_us"] = array("d", r[7]).tolist()
        out[tuple(r[:6])] = data
    return out


def integrity(store: Path) -> str:
    db = sqlite3.connect(store)
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()


def run_ids(store: Path) -> list[str]:
    if not store.exists():
        return []
    db = sqlite3.connect(store)
    try:
        return [r[0] for r in db.execute("SELECT id FROM runs ORDER BY started_at")]
    except sqlite3.OperationalError:  # killed before the schema was committed
        return []
    finally:
        db.close()


def wait_for_rows(proc: subprocess.Popen, jsonl: Path, rows: int, timeout: float) -> None:
    """Until the run has reported ROWS rows (results.jsonl gets a line as each row is stored) or ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None and not (
            jsonl.is_file() and jsonl.read_text().count("\n") >= rows):
        time.sleep(0.05)


def test_kill_9_at_random_moments_then_resume(tmp_path):
    rng = random.Random(7)
    store, cache = tmp_path / "s.sqlite", tmp_path / "cache"
    # the first kill lands in a cold start (model preparation / conversions), the others in a warm
    # one (all artifacts cached: measurements). The last one waits for a seeded number of reported
    # rows, then a seeded fraction of a row's measurement: a moment between the first and the last
    # row however loaded the machine is (a fixed delay missed them at load 14).
    moments = [rng.uniform(6.0, 14.0), rng.uniform(2.5, 5.0), (rng.randint(1, PLANNED - 2), rng.uniform(0.0, 0.3))]
    interrupted_with_rows = 0
    for i, moment in enumerate(moments):
        tag = uuid.uuid4().hex
        out = tmp_path / f"run{i}"
        known_runs = set(run_ids(store))
        proc = start(["run", *CAMPAIGN, "--out", str(out), "--store", str(store), "--cache-dir", str(cache)], tag)
        if isinstance(moment, tuple):
            wait_for_rows(proc, out / "results.jsonl", moment[0], timeout=120)
            time.sleep(moment[1])
        else:
            time.sleep(moment)
        finished_before_kill = proc.poll() is not None
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate(timeout=30)
        # no converter worker or runner outlives the killed run (workers watch their parent)
        assert wait_gone(tag, 10) == [], f"orphans after kill {i}"

        new = [r for r in run_ids(store) if r not in known_runs]
        if not new:
            continue  # killed before the run was registered: nothing stored, nothing to resume
        run_id = new[0]
        assert integrity(store) == "ok"
        before = {k: v for k, v in stored(store).items() if k[0] == run_id}
        reported = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()] \
            if (out / "results.jsonl").exists() else []
        for r in reported:  # everything reported done is in the store, exactly as reported
            key = (run_id, r["model"], r["flag_set"], r["device"], r["threads"], int(r["xnnpack"]))
            assert key in before and before[key]["samples_us"] == r["samples_us"]
        if 0 < len(before) < PLANNED and not finished_before_kill:
            interrupted_with_rows += 1

        res = run_cli("run", "--resume", run_id, "--store", str(store), "--cache-dir", str(cache), *WORKERS,
                      timeout=300)
        assert res.returncode == 0, res.stderr[-3000:]
        assert f"{len(before)} row(s) already stored" in res.stdout
        after = {k: v for k, v in stored(store).items() if k[0] == run_id}
        assert len(after) == PLANNED and all(v["status"] == "ok" for v in after.values())
        for key, row in before.items():  # rows stored before the kill are kept as they were
            assert after[key]["samples_us"] == row["samples_us"]
        lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]
        keys = [(r["model"], r["flag_set"], r["device"], r["threads"]) for r in lines]
        assert len(keys) == len(set(keys)) == PLANNED  # only the missing rows were run
        assert integrity(store) == "ok"
    assert interrupted_with_rows >= 1, "no kill landed between the first and the last row; adjust the moments"


def test_ctrl_c_stops_cleanly_with_130_and_the_resume_command(tmp_path):
    store, cache = tmp_path / "s.sqlite", tmp_path / "cache"
    warm = run_cli("run", "--model", str(TINY), "--out", str(tmp_path / "warm"), "--store", str(store),
                   "--cache-dir", str(cache), "--runs", "3", "--min-seconds", "0", timeout=120)
    assert warm.returncode == 0, warm.stderr[-2000:]
    tag = uuid.uuid4().hex
    # slow measurements (1 s each) so that Ctrl-C lands in the middle of the run
    proc = start(["run", "--model", str(TINY), "--threads", "1,2,3", "--runs", "3", "--min-seconds", "1",
                  "--out", str(tmp_path / "run"), "--store", str(store), "--cache-dir", str(cache)], tag)
    # Ctrl-C once the first row is reported: results.jsonl gets a line as each row is stored,
    # and reading a file cannot be held up by the run's own writes to the store.
    jsonl, t0 = tmp_path / "run" / "results.jsonl", time.monotonic()
    while time.monotonic() < t0 + 60 and proc.poll() is None and not (
            jsonl.is_file() and jsonl.read_text().count("\n") >= 1):
        time.sleep(0.05)
    waited = time.monotonic() - t0
    assert proc.poll() is None, f"the run ended after {waited:.1f} s, before its first row was seen"
    state = _signal_state(proc.pid)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (f"Ctrl-C after {waited:.1f} s ({state})", out[-2000:], err[-2000:])
    run_id = run_ids(store)[-1]
    assert f"tflite-harness run --resume {run_id} --store {store}" in " ".join(out.split())
    assert wait_gone(tag, 10) == []
    assert integrity(store) == "ok"
    kept = {k for k in stored(store) if k[0] == run_id}
    assert 0 < len(kept) < 3
    res = run_cli("run", "--resume", run_id, "--store", str(store), "--cache-dir", str(cache), timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert len({k for k in stored(store) if k[0] == run_id}) == 3
    # a device thread finishing its job after Ctrl-C must not write to the closed store
    assert "Traceback" not in out + err, err[-2000:]
