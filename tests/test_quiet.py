"""Runtime log lines stay off the user's terminal and notebook and go to the run's logs (issue 19 item 4).

LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." from native code to
fd 2, once per process: each check runs in a fresh process (as a notebook kernel or a CLI
call is) and reads what reached fd 2 (capfd) or the command's stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from .conftest import ROOT, run_cli

TINY = ROOT / "tests" / "data" / "tiny.tflite"
LINE = "Created TensorFlow Lite XNNPACK delegate for CPU."

_SCRIPT = """
import sys
from ai_edge_litert.interpreter import Interpreter
from harness.core.native_log import native_stderr_to, verbose_output

with verbose_output(sys.argv[2] == "verbose"), native_stderr_to(sys.argv[1]):
    it = Interpreter(model_path=sys.argv[3])
    it.allocate_tensors()
    it.invoke()
    print("python's own stderr", file=sys.stderr)
print("after", file=sys.stderr)
"""


def _fresh(*args: str) -> None:
    """A new Python process writing to this test's fd 1 and 2 (what capfd reads)."""
    subprocess.run([sys.executable, "-c", _SCRIPT, *args], cwd=ROOT, check=True, timeout=120,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_native_lines_go_to_the_log_unless_verbose(tmp_path, capfd):
    log = tmp_path / "logs" / "runtime.log"
    _fresh(str(log), "quiet", str(TINY))
    err = capfd.readouterr().err
    assert LINE not in err and "python's own stderr" not in err and err.strip() == "after", err
    text = log.read_text()
    assert LINE in text and text.index(LINE) < text.index("python's own stderr")  # in the order written

    _fresh(str(tmp_path / "other.log"), "verbose", str(TINY))
    err = capfd.readouterr().err
    assert LINE in err and "after" in err  # verbose=True / --debug: as before
    assert not (tmp_path / "other.log").exists()


def test_cli_run_prints_the_table_not_the_runtime_log(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("run", "--model", str(TINY), "--runs", "5", "--min-seconds", "0", "--eval-samples", "2",
                   "--out", str(out), "--store", str(tmp_path / "s.sqlite"), "--cache-dir", str(tmp_path / "cache"),
                   timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "INFO:" not in proc.stdout + proc.stderr and "tiny" in proc.stdout
    (row,) = json.loads((out / "results.json").read_text())
    log = (out / "logs" / "runtime.log").read_text()
    assert f"=== tiny/{row['flag_set']} on local, 1 thread(s)\n" in log and LINE in log
