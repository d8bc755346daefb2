"""tests/support/parallel.py: how `make test` splits the suite over two xdist workers.

A tiny suite run with `-n 2 --dist loadscope`, as `make test` runs the real one: an `alone`
test and a plain test each watch, for a moment, whether the other is running (they would
overlap without the lock: they are on different workers and start together); the heaviest
module is started first; each module stays on one worker; `--cpu-times` lists each test's CPU.
"""

from __future__ import annotations

import json

import pytest

from .conftest import ROOT

pytest.importorskip("xdist", reason="pytest-xdist is not installed: pip install -e '.[dev]'")

pytest_plugins = ["pytester"]

WATCH = '''
import json, os, time
from pathlib import Path

LOG = Path(os.environ["PARALLEL_LOG"])


def watch(me, other, worker, seconds=1.5):
    """Say I run; for SECONDS, look for OTHER running; log what was seen."""
    (LOG / f"{me}.running").touch()
    start = time.time()
    seen, deadline = False, time.monotonic() + seconds
    while time.monotonic() < deadline and not seen:
        seen = (LOG / f"{other}.running").exists()
        time.sleep(0.02)
    (LOG / f"{me}.running").unlink()
    with open(LOG / "events.jsonl", "a") as f:
        f.write(json.dumps({"test": me, "saw": seen, "worker": worker,
                            "start": start}) + "\\n")
'''


def test_alone_runs_by_itself_and_heavy_modules_start_first(pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("PARALLEL_LOG", str(tmp_path))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))  # where the run's lock folder goes
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # tests.support.parallel, in the subprocess
    monkeypatch.delenv("COLUMNS", raising=False)  # as a plain run would have it: its workers too
    pytester.makeconftest('pytest_plugins = ["tests.support.parallel"]\n')
    pytester.makepyfile(watch=WATCH)
    pytester.makepyfile(
        test_light="from watch import watch\n\ndef test_light(worker_id):\n    watch('light', 'alone', worker_id, 0.1)\n",
        test_plain="import pytest\nfrom watch import watch\n\npytestmark = pytest.mark.cost(60)\n\n"
                   "def test_plain(worker_id):\n    watch('plain', 'alone', worker_id)\n\n"
                   "def test_plain_2(worker_id):\n    watch('plain_2', 'alone', worker_id, 0.1)\n",
        test_alone="import os, pytest\nfrom watch import watch\n\n@pytest.mark.alone\n"
                   "def test_alone(worker_id):\n    watch('alone', 'plain', worker_id)\n"
                   "    assert 'PYTEST_XDIST_WORKER' not in os.environ and 'COLUMNS' not in os.environ\n",
    )
    result = pytester.runpytest_subprocess("-n", "2", "--dist", "loadscope", "-p", "no:cacheprovider",
                                           "--cpu-times", "0")
    result.assert_outcomes(passed=4)
    cpu_lines = [line for line in result.outlines if line.rstrip().endswith(("::test_alone", "::test_plain"))
                 and "s cpu " in line]
    assert len(cpu_lines) == 2 and any("CPU seconds per test" in line for line in result.outlines), result.outlines
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    by_test = {e["test"]: e for e in events}
    assert not by_test["alone"]["saw"] and not by_test["plain"]["saw"], events  # never together
    # the `alone` module first, then the costly one, the light one last; a module on one worker
    first = {}
    for e in sorted(events, key=lambda e: e["start"]):
        first.setdefault(e["worker"], e["test"])
    assert set(first.values()) == {"alone", "plain"}, events  # `light` (collected second) waits
    assert by_test["plain"]["worker"] == by_test["plain_2"]["worker"]
    assert list((tmp_path / "tmp").glob("tflite-harness-xdist-*")) == []  # the lock folder is removed


def test_without_xdist_the_order_is_as_written(pytester, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    pytester.makeconftest('pytest_plugins = ["tests.support.parallel"]\n')
    pytester.makepyfile(
        test_a="def test_a():\n    pass\n",
        test_b="import pytest\n\n@pytest.mark.alone\n@pytest.mark.cost(99)\ndef test_b():\n    pass\n",
    )
    items, _ = pytester.inline_genitems("-p", "no:cacheprovider")
    assert [i.name for i in items] == ["test_a", "test_b"]
