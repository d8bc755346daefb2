"""A whole campaign on `local` plus the simulated ADB device, through the real CLI.

Issue 4's acceptance: `tflite-harness run --devices local,adb:127.0.0.1:PORT` gives rows
for both devices in one table, with on-device drift and device-vs-local drift; and the
same run works through a real adb server (Debian `adb`) that has the device connected.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.support.adb_device import SimulatedAdbDevice
from tests.test_adb_simulator import AdbCli, adb_cli  # noqa: F401 - fixture

from .conftest import MODELS, harness_adb_key, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory):
    """The first test's cache, copied once its run is done, for the tests that do not look at how
    the artifacts were made: same model, flag sets and --eval-samples, so they convert nothing and
    start no TensorFlow. (The first test keeps its own cold cache: it checks the conversion
    pipeline's order. Run alone, a test here finds this empty and converts for itself.)"""
    return tmp_path_factory.mktemp("adb_cache")


def rows_of(path):
    return {(r["model"], r["flag_set"], r["device"]): r for r in json.loads(path.read_text())}


def check_rows(rows: dict, device: str) -> None:
    for flag_set in ("fp32", "int8"):
        local, remote = rows[("digits_cnn", flag_set, "local")], rows[("digits_cnn", flag_set, device)]
        assert local["status"] == "ok" and remote["status"] == "ok", (local["reason"], remote["reason"])
        assert remote["artifact"] == local["artifact"]
        # on-device drift against the original model, measured like the local row
        assert remote["drift"]["samples"] == local["drift"]["samples"] == 8
        assert remote["drift"]["top1_agreement"] >= 0.8
        # device vs local on the same artifact: same runtime here, so identical outputs
        vs = remote["drift"]["vs_local"]
        assert vs["max_abs"] == 0.0 and vs["top1_agreement"] == 1.0
        assert remote["latency_us"]["n"] >= 10
        assert remote["device_info"]["model"] == "SimPhone"


def test_local_and_direct_adb_device_in_one_table(tmp_path, warm_cache):
    android = tmp_path / "android"
    env = {"ANDROID_USER_HOME": str(android), "HOME": str(tmp_path)}

    pub_key = harness_adb_key(android)
    with SimulatedAdbDevice(root=tmp_path / "device", authorized_keys=[str(pub_key)]) as dev:
        proc = run_cli(
            "run", "--model", str(MODELS / "digits_cnn.keras"), "--flag-sets", "fp32,int8",
            "--devices", f"local,adb:{dev.serial}", "--runs", "10", "--min-seconds", "0.05",
            "--eval-samples", "8", "--out", str(tmp_path / "run"), "--store", str(tmp_path / "s.sqlite"),
            "--cache-dir", str(tmp_path / "cache"), env=env,
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    shutil.copytree(tmp_path / "cache", warm_cache, dirs_exist_ok=True)
    assert f"adb:{dev.serial}" in proc.stdout  # both devices in one table
    check_rows(rows_of(tmp_path / "run" / "results.json"), f"adb:{dev.serial}")
    check_pipelined(tmp_path / "run" / "logs" / "build-timeline.json")


def check_pipelined(path) -> None:
    """From the run's recorded job events: fp32 needs no representative data, so it went to the
    workers before the model's preparation finished; int8 calibrates, so it waited for it."""
    events = json.loads(path.read_text())["jobs"]

    def index(event: str, op: str, flag_set: str | None) -> int:
        return next(i for i, e in enumerate(events)
                    if (e["event"], e["op"], e["flag_set"]) == (event, op, flag_set))

    prepared = index("finished", "prepare", None)
    assert index("submitted", "convert", "fp32") < prepared < index("submitted", "convert", "int8")


def test_same_run_through_a_real_adb_server(tmp_path, adb_cli: AdbCli, warm_cache):  # noqa: F811
    with SimulatedAdbDevice(root=tmp_path / "device", authorized_keys=[str(adb_cli.pubkey)]) as dev:
        out = adb_cli.run("connect", dev.serial)
        assert "connected" in out.stdout, out
        assert adb_cli.wait_state(dev.serial, "device") == "device"
        try:
            proc = run_cli(
                "run", "--model", str(MODELS / "digits_cnn.keras"), "--flag-sets", "fp32,int8",
                "--devices", f"local,adb:{dev.serial}", "--runs", "10", "--min-seconds", "0.05",
                "--eval-samples", "8", "--out", str(tmp_path / "run"), "--store", str(tmp_path / "s.sqlite"),
                "--cache-dir", str(warm_cache), "--workers", "1", env=adb_cli.env,
            )
        finally:
            adb_cli.run("disconnect", dev.serial)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = rows_of(tmp_path / "run" / "results.json")
    check_rows(rows, f"adb:{dev.serial}")
    assert rows[("digits_cnn", "fp32", f"adb:{dev.serial}")]["device_info"].get("transport", "server") == "server" or \
        "server" in json.dumps(rows[("digits_cnn", "fp32", f"adb:{dev.serial}")])


def test_unreachable_device_gives_rows_that_say_so_and_local_goes_on(tmp_path, warm_cache):
    from tests.test_adb_simulator import _free_port

    port = _free_port()
    proc = run_cli(
        "run", "--model", str(MODELS / "digits_cnn.keras"), "--flag-sets", "fp32",
        "--devices", f"local,adb:127.0.0.1:{port}", "--runs", "5", "--min-seconds", "0",
        "--eval-samples", "8", "--out", str(tmp_path / "run"), "--store", str(tmp_path / "s.sqlite"),
        "--cache-dir", str(warm_cache), "--workers", "1", env={"ANDROID_USER_HOME": str(tmp_path / "a")},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = rows_of(tmp_path / "run" / "results.json")
    assert rows[("digits_cnn", "fp32", "local")]["status"] == "ok"
    lost = rows[("digits_cnn", "fp32", f"adb:127.0.0.1:{port}")]
    assert lost["status"] == "device_lost" and "refused" in lost["reason"]


def test_two_devices_run_in_parallel_one_job_at_a_time_each(tmp_path, warm_cache):

    android = tmp_path / "android"
    pub_key = harness_adb_key(android)
    pub = [str(pub_key)]
    with SimulatedAdbDevice(root=tmp_path / "a", authorized_keys=pub) as a, \
            SimulatedAdbDevice(root=tmp_path / "b", authorized_keys=pub) as b:
        proc = run_cli(
            "run", "--model", str(MODELS / "digits_cnn.keras"), "--flag-sets", "fp32,int8",
            "--devices", f"adb:{a.serial},adb:{b.serial}", "--runs", "10", "--min-seconds", "0.5",
            "--eval-samples", "8", "--out", str(tmp_path / "run"), "--store", str(tmp_path / "s.sqlite"),
            "--cache-dir", str(warm_cache), "--workers", "1", env={"ANDROID_USER_HOME": str(android)},
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((tmp_path / "run" / "results.json").read_text())
    by_device: dict[str, list] = {}
    for r in rows:
        assert r["status"] == "ok", r["reason"]
        by_device.setdefault(r["device"], []).append((r["started_at"], r["finished_at"]))
    assert set(by_device) == {f"adb:{a.serial}", f"adb:{b.serial}"}
    for spans in by_device.values():  # one job at a time on each device
        spans.sort()
        assert all(prev[1] <= nxt[0] for prev, nxt in zip(spans, spans[1:], strict=False))
    spans_a, spans_b = by_device.values()
    # devices in parallel: the two devices' busy periods overlap
    assert max(spans_a[0][0], spans_b[0][0]) < min(spans_a[-1][1], spans_b[-1][1])
