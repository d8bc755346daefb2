"""Lost and bad devices through a whole campaign (real CLI, simulated adbd on loopback).

A device that drops mid-push, mid-run or mid-pull (every time) is retried with bounded
backoff, then its remaining jobs are `device_lost` rows while `local` finishes `ok`; a
`--resume` with the device healthy again re-runs exactly the device_lost rows. Device-side
bad inputs (full storage, missing or wrong-ABI benchmark_model, unauthorized key, a device
that never answers) are rows with a clear reason, in one run, next to healthy local rows.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.support.adb_device import SimulatedAdbDevice

from .conftest import ROOT, harness_adb_key, run_cli

pytestmark = pytest.mark.slow

TINY = ROOT / "tests" / "data" / "tiny.tflite"
FAST = ["--runs", "3", "--min-seconds", "0", "--eval-samples", "4"]


@pytest.fixture
def android(tmp_path):
    """(env for the CLI, our adb public key): the harness's own adbkey, made like adb does."""

    home = tmp_path / "android"
    pub_key = harness_adb_key(home)
    return {"ANDROID_USER_HOME": str(home), "HOME": str(tmp_path)}, pub_key


def rows_of(out: Path) -> dict:
    return {(r["model"], r["device"], r["threads"]): r for r in json.loads((out / "results.json").read_text())}


@pytest.mark.parametrize("fault, phase", [
    ({"drop_after_bytes_pushed": 64}, "push"),
    ({"drop_during_shell": " -I "}, "run"),
    ({"drop_during_pull": "-out.npz"}, "pull"),
], ids=["push", "run", "pull"])
def test_device_drops_then_resume_retries_the_lost_rows(tmp_path, android, fault, phase):
    env, pub = android
    store = tmp_path / "s.sqlite"
    common = ["--store", str(store), "--cache-dir", str(tmp_path / "cache")]
    with SimulatedAdbDevice(tmp_path / "dev", authorized_keys=[pub], drop_times=None, **fault) as dev:
        name = f"adb:{dev.serial}"
        t0 = time.monotonic()
        proc = run_cli("run", "--model", str(TINY), "--threads", "1,2", "--devices", f"local,{name}",
                       "--out", str(tmp_path / "run"), *common, *FAST, env=env, timeout=300)
        elapsed = time.monotonic() - t0
        port = dev.port
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = rows_of(tmp_path / "run")
    for th in (1, 2):
        assert rows[("tiny", "local", th)]["status"] == "ok"
        lost = rows[("tiny", name, th)]
        assert lost["status"] == "device_lost", lost["reason"]
    first = rows[("tiny", name, 1)]["reason"]
    assert f"during {phase}" in first and "3 attempts" in first, first
    assert "lost earlier" in rows[("tiny", name, 2)]["reason"]  # no second round of retries
    assert elapsed < 60  # retries are bounded (0.5 s + 1 s backoff)
    local_before = {th: rows[("tiny", "local", th)]["samples_us"] for th in (1, 2)}

    if phase != "run":
        return  # one resume is enough to prove it; the drops above differ only in the phase
    run_id = json.loads((tmp_path / "run" / "results.json").read_text())[0].get("run_id") or \
        proc.stdout.split("run ", 1)[1].split(":", 1)[0].strip()
    with SimulatedAdbDevice(tmp_path / "dev", port=port, authorized_keys=[pub]):
        res = run_cli("run", "--resume", run_id, *common, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "2 row(s) already stored" in res.stdout  # the two local rows; the lost ones run again
    rows = rows_of(tmp_path / "run")
    for th in (1, 2):
        assert rows[("tiny", name, th)]["status"] == "ok", rows[("tiny", name, th)]["reason"]
        assert rows[("tiny", "local", th)]["samples_us"] == local_before[th]  # kept, not re-run


def test_device_side_bad_inputs_are_rows_and_local_goes_on(tmp_path, android):
    env, pub = android
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    wrong_abi = tmp_path / "android_aarch64_benchmark_model"
    wrong_abi.write_bytes(b"\x7fELF" + bytes(range(64)))
    sims = {
        "full": SimulatedAdbDevice(tmp_path / "full", authorized_keys=[pub], storage_limit_bytes=1000),
        "nobin": SimulatedAdbDevice(tmp_path / "nobin", authorized_keys=[pub]),
        "abi": SimulatedAdbDevice(tmp_path / "abi", authorized_keys=[pub]),
        "unauth": SimulatedAdbDevice(tmp_path / "unauth", authorized_keys=[]),
        "silent": SimulatedAdbDevice(tmp_path / "silent", authorized_keys=[pub], never_answer_auth=True),
    }
    for s in sims.values():
        s.start()
    try:
        extra = {
            "nobin": 'runner = "benchmark_model"\ndevice_benchmark_model = "/data/local/tmp/no-such-benchmark_model"\n',
            "abi": f'runner = "benchmark_model"\nbenchmark_model = "{wrong_abi}"\n',
            "silent": "auth_timeout_s = 2\n",
            "unauth": "auth_timeout_s = 2\n",
        }
        for key, sim in sims.items():
            (profiles / f"{key}.toml").write_text(
                f'[device]\nname = "sim-{key}"\naddress = "adb:{sim.serial}"\ntransport = "direct"\n'
                + extra.get(key, ""))
        devices = ",".join(["local", *(f"sim-{k}" for k in sims)])
        proc = run_cli("run", "--model", str(TINY), "--devices", devices, "--out", str(tmp_path / "run"),
                       "--store", str(tmp_path / "s.sqlite"), "--cache-dir", str(tmp_path / "cache"), *FAST,
                       env={**env, "TFLITE_HARNESS_DEVICES": str(profiles)}, timeout=300)
    finally:
        for s in sims.values():
            s.stop()
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = rows_of(tmp_path / "run")
    assert rows[("tiny", "local", 1)]["status"] == "ok"
    expect = {
        "full": ("runtime_failed", "storage is full"),
        "nobin": ("runtime_failed", "benchmark_model not found"),
        "abi": ("runtime_failed", "wrong ABI"),
        "unauth": ("device_lost", "did not accept our key"),
        "silent": ("device_lost", ""),
    }
    for key, (status, fragment) in expect.items():
        r = rows[("tiny", f"sim-{key}", 1)]
        assert r["status"] == status and fragment in r["reason"], (key, r["status"], r["reason"])
        assert "\n" not in r["reason"]
