"""Bad input through the real CLI: one clear line, exit code 2, no traceback."""

from __future__ import annotations

import pytest

from .conftest import MODELS, run_cli


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "bad.toml").write_text("name = ")
    (d / "empty.keras").write_bytes(b"")
    (d / "notes.txt").write_text("hello")
    (d / "types.toml").write_text("[settings]\nruns = 'many'\n")
    return d


CASES = [
    (["run", "--model", "missing.keras"], "does not exist"),
    (["run", "{d}/bad.toml"], "not valid TOML"),
    (["run", "{d}/types.toml"], "runs must be int"),
    (["run", "{d}/none.toml"], "campaign file not found"),
    (["run", "--model", str(MODELS / "digits_cnn.keras"), "--flag-sets", "fp33"], "unknown flag set 'fp33'"),
    (["run", "--model", str(MODELS / "digits_cnn.keras"), "--threads", "two"], "threads are positive integers"),
    (["run", "--model", str(MODELS / "digits_cnn.keras"), "--devices", "phone"], "unknown device 'phone'"),
    (["run", "--model", "{d}/empty.keras"], "is empty"),
    (["run", "--model", "{d}/notes.txt"], "cannot tell the model kind"),
    (["run", "--samples", str(MODELS / "digits_cnn.samples.npz")], "--samples applies to --model"),
    (["run", "--model", str(MODELS / "digits_cnn.keras"), "--samples", "{d}/nope.npz"], "does not exist"),
    (["run", "--bogus-option"], "No such option"),
    (["frobnicate"], "No such command"),
    (["convert", str(MODELS / "digits_cnn.keras")], "Missing option '--out'"),
]


@pytest.mark.parametrize("args, fragment", CASES, ids=[" ".join(a)[:50] for a, _ in CASES])
def test_usage_errors_are_one_line_exit_2(files, args, fragment):
    proc = run_cli(*[a.format(d=files) for a in args], timeout=60)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert fragment in proc.stderr
    assert "Traceback" not in proc.stderr
    # click prints usage lines for its own errors; ours are exactly one line
    if proc.stderr.startswith("error:"):
        assert proc.stderr.strip().count("\n") == 0


def test_debug_shows_the_traceback(files):
    proc = run_cli("--debug", "run", str(files / "bad.toml"), timeout=60)
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_help_on_every_command():
    for cmd in ([], ["run"], ["convert"]):
        proc = run_cli(*cmd, "--help", timeout=60)
        assert proc.returncode == 0 and "Usage:" in proc.stdout


def test_help_does_not_import_tensorflow_or_numpy():
    import subprocess
    import sys

    code = ("import sys; from harness.cli.main import main\n"
            "try:\n main(['--help'])\nexcept SystemExit: pass\n"
            "print('TF' if 'tensorflow' in sys.modules else '', 'NP' if 'numpy' in sys.modules else '')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert "TF" not in out and "NP" not in out
