"""A run that outlives settings.timeout_s is stopped on the device, not only abandoned.

Before, a transport timeout closed our connection and left the hung process running on the
device, sharing its CPU with every later job. Now each remote run goes under the device's
own `timeout`, so the row says `timeout` and nothing of the run is left behind.
"""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from harness.devices.adb.runners import DEADLINE_EXIT, under_deadline
from tests.test_adb_device import STAND_IN, direct, key, make_job, models, sim_for  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow


def _processes_under(root: Path) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(root) in args and "benchmark_model-" in args:
            found.append(args)
    return found


def test_under_deadline_stops_the_command_with_timeouts_exit_code() -> None:
    r = subprocess.run(["/bin/sh", "-c", under_deadline("sleep 30", 1)], timeout=20, check=False)
    assert r.returncode == DEADLINE_EXIT
    r = subprocess.run(["/bin/sh", "-c", under_deadline("exit 3", 5)], timeout=20, check=False)
    assert r.returncode == 3  # the command's own status when it finishes in time


def test_no_timeout_applet_runs_the_command_unbounded(tmp_path: Path) -> None:
    # a device without `timeout`: PATH holds only a shell, so `command -v timeout` fails
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sh").symlink_to("/bin/sh")
    r = subprocess.run(["/bin/sh", "-c", under_deadline("echo ran; exit 4", 1)], timeout=20,
                       check=False, capture_output=True, text=True, env={"PATH": str(bin_dir)})
    assert r.returncode == 4 and r.stdout.strip() == "ran"


def test_hung_benchmark_model_is_stopped_on_the_device(models: Path, key: Path, tmp_path: Path) -> None:  # noqa: F811
    with sim_for(tmp_path, key) as sim:
        # the stand-in sleeps 1 s after every run: 1000 runs would take ~17 minutes
        dev = direct(sim, runner="benchmark_model", benchmark_model=STAND_IN,
                     extra_args={"run_delay": "1"})
        try:
            job = replace(make_job(models), runs=1000, max_seconds=3600, timeout_s=2)
            m = dev.measure(job)
            assert m.status == "timeout", (m.status, m.reason)
            assert "stopped on the device" in m.reason and "2 s" in m.reason
            assert _processes_under(sim.root) == []
            # the connection was not torn down: the device answers the next command at once
            assert dev.transport.shell("echo still-here", timeout_s=10).output.strip() == "still-here"
        finally:
            dev.close()
