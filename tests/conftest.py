"""Shared helpers: run the real CLI in a subprocess, point it at temporary folders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
TEST_MODELS = Path(__file__).resolve().parent / "models"

# markers `cost` and `alone`, and how the suite is split over xdist workers (docs/testing.md)
pytest_plugins = ["tests.support.parallel"]


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 900, env: dict | None = None):
    """Run `tflite-harness ARGS` as a user would; returns CompletedProcess (text)."""
    full_env = {**os.environ, "COLUMNS": "220", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        cwd=cwd or ROOT, capture_output=True, text=True, timeout=timeout, env=full_env,
    )


@pytest.fixture(scope="session")
def suite_cache(tmp_path_factory) -> Path:
    """One conversion cache for the whole suite, shared by both xdist workers: a test that
    does not look at how its artifacts were made (converted or cached, how many workers, in
    which order) passes `--cache-dir suite_cache`, and only the first test to need a
    conversion or a reference pays TensorFlow's import for it. Safe to share: the cache
    writes every entry through a unique temporary name (convert/cache.py)."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # pytest-N/, above popen-gwK/
    path = root / "suite-cache"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def cli():
    return run_cli


def harness_adb_key(folder: Path) -> Path:
    """Create the harness's own adbkey in FOLDER (used as ANDROID_USER_HOME), like adb does.

    Returns the public key's path, for a SimulatedAdbDevice's `authorized_keys`; CLI
    subprocesses get `ANDROID_USER_HOME=FOLDER` so they sign with the same key.
    """
    from harness.devices.adb.transport import load_signers

    old = os.environ.get("ANDROID_USER_HOME")
    os.environ["ANDROID_USER_HOME"] = str(folder)
    try:
        _signers, key = load_signers()
    finally:
        if old is None:
            os.environ.pop("ANDROID_USER_HOME")
        else:
            os.environ["ANDROID_USER_HOME"] = old
    return Path(str(key) + ".pub")
