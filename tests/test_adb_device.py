"""AdbDevice end to end against the simulated adbd: both transports, both runners, faults.

Real clients on loopback (adb-shell direct, Debian adb server through adbutils), real
.tflite files (converted by TensorFlow, committed in tests/data/), and the LocalDevice as the
reference for outputs.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from harness.core.errors import UsageError
from harness.devices.adb.device import AdbDevice
from harness.devices.adb.transport import DeviceUnreachable, load_signers
from harness.devices.base import MeasureJob
from harness.devices.local import LocalDevice
from harness.devices.profiles import DeviceProfile, load_profiles, parse_device_name
from tests.support.adb_device import SimulatedAdbDevice
from tests.test_adb_simulator import AdbCli, _free_port, adb_cli  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parent.parent
STAND_IN = ROOT / "tests" / "support" / "benchmark_model"
DATA = ROOT / "tests" / "data"

@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """The fp32 and int8 conversions of one small image CNN, made by TensorFlow once and
    committed (tests/data/make_fixtures.py --adb): this module tests devices, so it starts no
    TensorFlow of its own."""
    out = tmp_path_factory.mktemp("models")
    for name in ("fp32", "int8"):
        shutil.copyfile(DATA / f"adb_{name}.tflite", out / f"{name}.tflite")
    rng = np.random.default_rng(1)
    np.savez(out / "inputs.npz", **{"0": rng.random((4, 8, 8, 1), dtype=np.float32)})
    return out


@pytest.fixture(scope="module")
def key(tmp_path_factory) -> Path:
    """Our adbkey in a private ANDROID_USER_HOME (created by the harness like adb does)."""
    home = tmp_path_factory.mktemp("android")
    old = os.environ.get("ANDROID_USER_HOME")
    os.environ["ANDROID_USER_HOME"] = str(home)
    _signers, path = load_signers()
    assert path == home / "adbkey" and oct(path.stat().st_mode & 0o777) == "0o600"
    yield Path(str(path) + ".pub")
    if old is None:
        os.environ.pop("ANDROID_USER_HOME", None)
    else:
        os.environ["ANDROID_USER_HOME"] = old


def make_job(models: Path, name: str = "fp32.tflite", artifact: Path | None = None) -> MeasureJob:
    art = artifact or models / name
    sha = hashlib.sha256(art.read_bytes()).hexdigest()
    return MeasureJob(art, sha, models / "inputs.npz", ["image"], threads=1, xnnpack=True,
                      warmup_runs=1, runs=5, min_seconds=0.0, max_seconds=5.0, timeout_s=60)


_local_cache: dict[str, object] = {}


def local_outputs(models: Path, name: str):
    if name not in _local_cache:
        m = LocalDevice().measure(make_job(models, name))
        assert m.status == "ok", m.reason
        _local_cache[name] = m
    return _local_cache[name]


def direct(sim: SimulatedAdbDevice, progress=None, **kw) -> AdbDevice:
    name = f"adb:127.0.0.1:{sim.port}"
    return AdbDevice(DeviceProfile(name=name, address=name, **{"auth_timeout_s": 3.0, **kw}),
                     progress=progress)


def sim_for(tmp_path: Path, key: Path, **kw) -> SimulatedAdbDevice:
    return SimulatedAdbDevice(tmp_path / "dev", authorized_keys=[key], **kw)


def assert_matches_local(m, models: Path, name: str) -> None:
    ref = local_outputs(models, name)
    assert m.status == "ok", m.reason
    assert m.output_names == ref.output_names
    assert len(m.outputs) == len(ref.outputs)
    for a, b in zip(m.outputs, ref.outputs, strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------ names


def test_device_names_and_profiles(tmp_path: Path) -> None:
    assert parse_device_name("adb:127.0.0.1:5555").port == 5555
    assert parse_device_name("adb:emulator-5554").kind == "serial"
    assert parse_device_name("adb:usb").kind == "usb"
    for bad in ("adb:host:", "adb:a b", "adb:1.2.3.4:99999", "pixel"):
        with pytest.raises(UsageError):
            parse_device_name(bad)
    profiles = load_profiles(ROOT / "devices" / "examples")  # named explicitly, they load
    assert {"example-phone", "example-edge-board"} <= set(profiles)
    (tmp_path / "p.toml").write_text('[device]\nname="x"\naddress="adb:1.2.3.4:5555"\n'
                                     'remote_dir="/data/local/tmp/../../etc"\n')
    with pytest.raises(UsageError, match="remote_dir"):
        load_profiles(tmp_path)


# ------------------------------------------------------------------------------------------ (a)


def test_direct_info_cache_and_python_runner(models: Path, key: Path, tmp_path: Path) -> None:
    seen: list[tuple[str, int, int]] = []
    with sim_for(tmp_path, key) as sim:
        dev = direct(sim, progress=lambda *a: seen.append(a))
        try:
            info = dev.info()
            assert info["model"] == "SimPhone" and info["os"] == "Android 14 (SDK 34)"
            assert info["soc"] == "simboard" and info["transport"] == "direct"
            assert "python" in info["runners"] and info["cores"]
            job = make_job(models)
            m = dev.measure(job)
            assert_matches_local(m, models, "fp32.tflite")
            assert len(m.report.samples_us) >= 5 and m.report.runtime == "ai_edge_litert"
            assert set(m.report.device_state) == {"before", "after"}
            first = list(dev.folder.pushed_names)
            assert f"{job.artifact_sha}.tflite" in first
            size = job.artifact.stat().st_size
            assert (f"{job.artifact_sha}.tflite", size, size) in seen  # progress reached the end
            dev.measure(job)
            again = dev.folder.pushed_names[len(first):]
            assert all(n.startswith("job-") for n in again), again  # nothing cached re-sent
            assert sorted(p.name for p in (sim.data_dir / "tflite-harness").iterdir()) == sorted(
                n for n in first if not n.startswith("job-"))  # temp files cleaned up
        finally:
            dev.close()


# ------------------------------------------------------------------------------------------ (b)


def test_server_transport(models: Path, key: Path, adb_cli: AdbCli, tmp_path: Path) -> None:  # noqa: F811
    with SimulatedAdbDevice(tmp_path / "dev", authorized_keys=[adb_cli.pubkey]) as sim:
        port = int(adb_cli.env["ANDROID_ADB_SERVER_PORT"])
        try:
            assert f"connected to {sim.serial}" in adb_cli.run("connect", sim.serial).stdout
            assert adb_cli.wait_state(sim.serial, "device") == "device"
            name = f"adb:{sim.serial}"
            # HOST:PORT already listed by the server -> the server transport is chosen
            dev = AdbDevice(DeviceProfile(name=name, address=name, server_port=port))
            try:
                assert dev.transport.kind == "server"
                assert dev.info()["model"] == "SimPhone"
                assert_matches_local(dev.measure(make_job(models, "int8.tflite")), models,
                                     "int8.tflite")
            finally:
                dev.close()
        finally:
            adb_cli.run("disconnect", sim.serial)


# ------------------------------------------------------------------------------------------ (c)


@pytest.mark.parametrize("model", ["fp32.tflite", "int8.tflite"])
def test_benchmark_model_runner(models: Path, key: Path, tmp_path: Path, model: str) -> None:
    with sim_for(tmp_path, key) as sim:
        dev = direct(sim, runner="benchmark_model", benchmark_model=STAND_IN)
        try:
            m = dev.measure(make_job(models, model))
            assert_matches_local(m, models, model)
            agg = m.report.latency_aggregate
            assert agg["count"] >= 5 and agg["min"] <= agg["avg"] <= agg["max"]
            assert m.report.samples_us == [] and m.report.init_us > 0
            assert m.report.outputs[0]["shape"] == [1, 3]
        finally:
            dev.close()


# ------------------------------------------------------------------------------------------ (d)


def test_rejected_and_silent_keys_are_bounded(models: Path, key: Path, tmp_path: Path) -> None:
    with SimulatedAdbDevice(tmp_path / "a") as sim:  # our key is not authorized
        dev = direct(sim, auth_timeout_s=1.0)
        start = time.monotonic()
        with pytest.raises(DeviceUnreachable, match=r"did not accept our key within 1 s; "
                           r"confirm the 'Allow USB debugging'"):
            dev.info()
        m = dev.measure(make_job(models))
        assert m.status == "device_lost" and "Allow USB debugging" in m.reason
        assert time.monotonic() - start < 8
    with sim_for(tmp_path / "b", key, never_answer_auth=True) as sim:
        dev = direct(sim, auth_timeout_s=1.0)
        start = time.monotonic()
        with pytest.raises(DeviceUnreachable, match="did not accept our key"):
            dev.info()
        assert time.monotonic() - start < 5
    port = _free_port()
    dev = AdbDevice(DeviceProfile(name="b", address=f"adb:127.0.0.1:{port}", transport="direct"))
    with pytest.raises(DeviceUnreachable, match="connection refused"):
        dev.info()


# ------------------------------------------------------------------------------------------ (e)


@pytest.mark.parametrize("fault, phase", [
    ({"drop_after_bytes_pushed": 3000}, "push"),
    ({"drop_during_shell": " -I "}, "run"),
    ({"drop_during_pull": "-out.npz"}, "pull"),
])
def test_drops_are_retried_then_device_lost(models: Path, key: Path, tmp_path: Path,
                                            fault: dict, phase: str) -> None:
    with sim_for(tmp_path / "once", key, drop_times=1, **fault) as sim:
        dev = direct(sim)
        assert_matches_local(dev.measure(make_job(models)), models, "fp32.tflite")
        dev.close()
    with sim_for(tmp_path / "always", key, drop_times=None, **fault) as sim:
        dev = direct(sim)
        m = dev.measure(make_job(models))
        dev.close()
    assert m.status == "device_lost"
    assert m.reason == (f"adb:127.0.0.1:{sim.port}: connection lost during {phase} (3 attempts); "
                        "check the cable/network; completed results are kept")


# ------------------------------------------------------------------------------------------ (f)


def test_storage_full(models: Path, key: Path, tmp_path: Path) -> None:
    with sim_for(tmp_path, key, storage_limit_bytes=2000) as sim:
        dev = direct(sim)
        m = dev.measure(make_job(models))
        dev.close()
        assert (m.status, m.reason) == (
            "runtime_failed",
            "device storage is full (No space left on device); free space in /data/local/tmp")
        leftovers = [p.name for p in (sim.data_dir / "tflite-harness").iterdir()]
        assert not [n for n in leftovers if n.startswith(".tmp-")]


# ------------------------------------------------------------------------------------------ (g)


def test_hostile_file_names_run_nothing(models: Path, key: Path, tmp_path: Path) -> None:
    marker = f"/tmp/pwned-{uuid.uuid4().hex}"
    rel = Path(marker).name  # file names cannot hold '/': these would land in the shell's cwd
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    names = [f"a; touch {rel}", f"$(touch {rel})", f"b `touch {rel}` 'q\" .tflite"]
    with sim_for(tmp_path, key) as sim:
        dev = direct(sim)
        try:
            for n in names:
                art = hostile / n
                shutil.copy(models / "fp32.tflite", art)
                job = make_job(models, artifact=art)
                job.input_names = [f"image; touch {marker}"]  # goes into JSON, never a shell
                assert dev.measure(job).status == "ok"
            bad = make_job(models)
            bad.artifact_sha = f"x; touch {marker}"
            m = dev.measure(bad)
            assert m.status == "runtime_failed" and "refusing remote name" in m.reason
        finally:
            dev.close()
        assert not Path(marker).exists()
        assert not list(sim.root.rglob("pwned*"))
        assert not any("touch" in c for c in sim.commands)


# ------------------------------------------------------------------------------------------ (h)


def test_missing_and_wrong_abi_binary(models: Path, key: Path, tmp_path: Path) -> None:
    fake = tmp_path / "android_aarch64_benchmark_model"
    fake.write_bytes(b"\x7fELF" + os.urandom(64))
    with sim_for(tmp_path, key) as sim:
        dev = direct(sim, runner="benchmark_model",
                     device_benchmark_model="/data/local/tmp/no-such-benchmark_model")
        m = dev.measure(make_job(models))
        dev.close()
        assert m.status == "runtime_failed" and "benchmark_model not found" in m.reason
        dev = direct(sim, runner="benchmark_model", benchmark_model=fake)
        m = dev.measure(make_job(models))
        dev.close()
        assert m.status == "runtime_failed" and "wrong ABI" in m.reason, m.reason


# ------------------------------------------------------------------------------------------ CompiledModel

NO_COMPILED_MODEL = r"""#!/bin/sh
# a board whose ai_edge_litert has no CompiledModel (an older wheel): the import fails
if [ "$1" = "-I" ]; then
  shift
  exec {python} -I -c 'import runpy, sys; sys.modules["ai_edge_litert.compiled_model"] = None; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name="__main__")' "$@"
fi
exec {python} "$@"
"""


def test_python_runner_measures_a_compiled_model_row(models: Path, key: Path, tmp_path: Path) -> None:
    """The pushed runner uses CompiledModel where the board's ai_edge_litert has it, and says so where not."""
    from dataclasses import replace

    job = replace(make_job(models, "int8.tflite"), runtime_api="compiled_model")
    with sim_for(tmp_path, key) as sim:
        dev = direct(sim)
        try:
            m = dev.measure(job)
            assert_matches_local(m, models, "int8.tflite")  # int8 I/O through TensorBuffers, dequantized
            assert m.report.runtime_api == "compiled_model" and m.report.accelerator == "cpu"
            assert len(m.report.samples_us) >= 5 and len(m.report.roundtrip_us) >= 5
            assert m.report.fully_accelerated is not None
        finally:
            dev.close()
    fake = tmp_path / "old-python"
    fake.write_text(NO_COMPILED_MODEL.replace("{python}", shlex.quote(sys.executable)))
    fake.chmod(0o755)
    with sim_for(tmp_path / "old", key, python=fake) as sim:
        dev = direct(sim)
        try:
            m = dev.measure(job)
            assert m.status == "unsupported" and "has no CompiledModel" in m.reason, m.reason
            assert dev.measure(make_job(models, "int8.tflite")).status == "ok"  # the Interpreter still runs
        finally:
            dev.close()
