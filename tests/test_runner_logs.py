"""A device run through benchmark_model keeps what the tool printed (issue 14).

The simulated ADB device runs the stand-in benchmark_model (tests/support/benchmark_model);
the row's `log` names results/<run>/logs/<...>-benchmark_model.txt, which holds the command
line and the tool's whole output, so a figure in the table can be checked against it.
"""

from __future__ import annotations

import json

import pytest

from tests.support.adb_device import SimulatedAdbDevice

from .conftest import ROOT, harness_adb_key, run_cli

TINY = ROOT / "tests" / "data" / "tiny.tflite"
STAND_IN = ROOT / "tests" / "support" / "benchmark_model"

pytestmark = pytest.mark.slow


def test_benchmark_model_output_and_command_are_kept_and_named_in_the_row(tmp_path):
    android = tmp_path / "android"
    pub_key = harness_adb_key(android)
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    with SimulatedAdbDevice(root=tmp_path / "device", authorized_keys=[str(pub_key)]) as dev:
        (profiles / "sim.toml").write_text(
            f'[device]\nname = "sim"\naddress = "adb:{dev.serial}"\nrunner = "benchmark_model"\n'
            f'benchmark_model = "{STAND_IN}"\n')
        env = {"ANDROID_USER_HOME": str(android), "HOME": str(tmp_path), "TFLITE_HARNESS_DEVICES": str(profiles)}
        proc = run_cli("run", "--model", str(TINY), "--devices", "sim", "--runs", "5", "--min-seconds", "0",
                       "--eval-samples", "2", "--out", str(tmp_path / "run"), "--store", str(tmp_path / "s.sqlite"),
                       "--cache-dir", str(tmp_path / "cache"), env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (row,) = json.loads((tmp_path / "run" / "results.json").read_text())
    assert row["status"] == "ok", row["reason"]
    log = tmp_path / "run" / "logs" / "tiny-as_given-sim-t1-benchmark_model.txt"
    assert row["log"] == str(log)
    text = log.read_text()
    command, output = text.split("\n", 1)
    assert command.startswith("$ ") and "--num_runs=5" in command and "--graph=" in command
    # the figure in the row is the one the tool printed
    avg = row["latency_us"]["avg"] if "avg" in row["latency_us"] else row["latency_us"]["mean"]
    assert f"avg={avg:g}" in output.replace(" ", "") or f"avg={int(avg)}" in output.replace(" ", ""), output[-800:]
