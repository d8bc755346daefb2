"""A failing device step keeps what succeeded (issue 22, item 5), on an Android-like shell.

Three simulated ADB devices whose shell is Debian's `mksh` with only toybox applets on PATH
(no bash, no GNU coreutils, no python), in one run of the real CLI, with the real x86_64
`benchmark_model` (/work/shared/bin) pushed by the harness:
- `full`: toybox with a `dd` (as Android's has): the timed run and the on-device drift work;
- `nodd`: a toybox built without `dd`: the row keeps benchmark_model's latency, its status is
  `latency_only`, and the reason names the failed step and the missing command;
- `py`: the python runner on a device whose probe found no python: nothing is pushed and the
  row says so at once.
Every pushed script, its output and exit code are in the run's logs/.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.adb_device import SimulatedAdbDevice

from .conftest import ROOT, harness_adb_key, run_cli

TINY = ROOT / "tests" / "data" / "tiny.tflite"
BENCHMARK_MODEL = Path("/work/shared/bin/benchmark_model")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (shutil.which("mksh") and shutil.which("toybox")),
                       reason="needs Debian's mksh and toybox: scripts/system-deps.sh"),
    pytest.mark.skipif(not BENCHMARK_MODEL.is_file(), reason="needs the real benchmark_model in /work/shared/bin"),
]


@pytest.fixture(scope="module")
def toybox_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("toybox")
    android = tmp / "android"
    key = str(harness_adb_key(android))
    profiles = tmp / "profiles"
    profiles.mkdir()
    devices = {
        "full": SimulatedAdbDevice(root=tmp / "full", authorized_keys=[key], toybox=True),
        "nodd": SimulatedAdbDevice(root=tmp / "nodd", authorized_keys=[key], toybox=True, toybox_dd=False),
        "py": SimulatedAdbDevice(root=tmp / "py", authorized_keys=[key], toybox=True),
    }
    for d in devices.values():
        d.start()
    try:
        for name, d in devices.items():
            runner = 'runner = "python"\n' if name == "py" else \
                f'runner = "benchmark_model"\nbenchmark_model = "{BENCHMARK_MODEL}"\n'
            (profiles / f"{name}.toml").write_text(
                f'[device]\nname = "{name}"\naddress = "adb:{d.serial}"\n{runner}')
        env = {"ANDROID_USER_HOME": str(android), "HOME": str(tmp), "TFLITE_HARNESS_DEVICES": str(profiles)}
        proc = run_cli("run", "--model", str(TINY), "--devices", "full,nodd,py", "--runs", "5",
                       "--min-seconds", "0", "--warmup-runs", "1", "--eval-samples", "3",
                       "--out", str(tmp / "run"), "--store", str(tmp / "s.sqlite"),
                       "--cache-dir", str(tmp / "cache"), env=env, timeout=300)
        commands = {name: list(d.commands) for name, d in devices.items()}
        pushed = {name: sorted(p.name for p in d.data_dir.rglob("*") if p.is_file()) for name, d in devices.items()}
    finally:
        for d in devices.values():
            d.stop()
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["device"]: r for r in json.loads((tmp / "run" / "results.json").read_text())}
    return rows, commands, pushed


def test_the_shell_is_mksh_with_toybox_only(tmp_path):
    with SimulatedAdbDevice(root=tmp_path / "d", toybox=True, toybox_dd=False) as dev:
        shell = dev.bin_dir / "sh"
        assert shell.resolve() == Path(shutil.which("mksh")).resolve()
        for absent in ("bash", "python", "python3", "dd"):
            assert not (dev.bin_dir / absent).exists(), absent
        assert (dev.bin_dir / "cat").resolve() == Path(shutil.which("toybox")).resolve()


def test_everything_works_where_toybox_has_dd(toybox_run):
    rows, _, _ = toybox_run
    row = rows["full"]
    assert row["status"] == "ok", row["reason"]
    assert row["latency_us"]["count"] >= 5 and row["reason"] == "no original model: drift not measured"
    log = Path(row["log"]).read_text()
    assert "on-device drift: pushed script job-" in log and "(exit code 0)" in log and "drift-done" in log
    assert "count=1" in log and "dd if=in-" in log  # the script itself is in the log


def test_a_missing_dd_costs_only_the_drift(toybox_run):
    rows, _, _ = toybox_run
    full, row = rows["full"], rows["nodd"]
    assert row["status"] == "latency_only"
    assert row["reason"] == "on-device drift failed: `dd` not found on the device"
    # benchmark_model's figures are kept: the same kind of figures the full device has. Its
    # percentiles (p5, median, p95) are printed or not depending on the timings themselves
    # (a ~1 us model: one run printed them and the other did not), so only the summary counts.
    summary = {"count", "avg", "std", "min", "max"}
    assert summary <= set(row["latency_us"]) and summary <= set(full["latency_us"]), (row["latency_us"], full)
    assert set(row["latency_us"]) <= summary | {"median", "p50", "p5", "p95"}
    assert row["drift"] is None
    log = Path(row["log"]).read_text()
    assert log.startswith("$ ") and "--num_runs=5" in log.splitlines()[0]  # the timed run's command
    assert "script-missing-command: dd" in log and "(exit code 127)" in log


def test_no_python_runner_is_pushed_where_the_probe_found_no_python(toybox_run):
    rows, commands, pushed = toybox_run
    row = rows["py"]
    assert row["status"] == "runtime_failed"
    assert "the device probe found no python3; nothing was pushed" in row["reason"]
    assert 'runner = "benchmark_model"' in row["reason"]
    assert not any(name.startswith("runner-") for name in pushed["py"]), pushed["py"]
    assert not any("runner-" in c for c in commands["py"])
