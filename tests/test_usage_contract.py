"""Every command, fed bad input, answers with a usage error (exit 2, one line, no traceback)
or, for a run, a reasoned row: the contract holds by construction (`harness/cli/errors.py`
is the one place that turns expected errors into usage errors), and this test walks the
commands with the inputs users get wrong: a file where a folder is wanted and the reverse,
a truncated .tflite, a store that is not one, names given twice, names that do not exist.
"""

from __future__ import annotations

import json

import pytest

from .conftest import ROOT, run_cli

TINY = ROOT / "tests" / "data" / "tiny.tflite"  # input x: (1, 8) float32


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    d = tmp_path_factory.mktemp("contract")
    (d / "afile").write_text("not a folder")
    (d / "adir").mkdir()
    (d / "notastore.sqlite").write_text("hello, not SQLite")
    blob = TINY.read_bytes()
    (d / "truncated.tflite").write_bytes(blob[: len(blob) // 2])
    (d / "shapes.toml").write_text(f'[[models]]\npath = "{TINY}"\ninput_shapes = {{ y = [1, 8] }}\n')
    # one real run, so the store-reading commands have something to be wrong about
    done = run_cli("run", "--model", str(TINY), "--runs", "2", "--min-seconds", "0", "--eval-samples", "2",
                   "--out", str(d / "run"), "--store", str(d / "s.sqlite"), "--cache-dir", str(d / "cache"),
                   timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return d


S = ["--store", "{d}/s.sqlite"]
RUN = ["run", "--model", str(TINY), "--runs", "2", "--min-seconds", "0", "--eval-samples", "2",
       "--store", "{d}/s2.sqlite", "--cache-dir", "{d}/cache"]

# (argv, fragment of the one-line error)
USAGE = [
    (RUN + ["--devices", "local,local"], "--devices names local more than once"),
    (RUN + ["--flag-sets", "fp32,fp32"], "--flag-sets names fp32 more than once"),
    (RUN + ["--out", "{d}/afile"], "is a file, not a folder"),
    (RUN[:-2] + ["--cache-dir", "{d}/afile"], "is a file, not a folder"),
    (RUN[:-4] + ["--cache-dir", "{d}/cache", "--store", "{d}/adir"], "is a folder; give the path of a .sqlite"),
    (["run", "--resume", "{d}/adir", *S], "no run in"),
    (["run", "{d}/shapes.toml", "--store", "{d}/s2.sqlite"], "input_shapes names ['y'] but the model's inputs are ['x']"),
    (["convert", str(TINY), "--out", "{d}/afile"], "is a file, not a folder"),
    (["convert", str(TINY), "--out", "{d}/conv", "--cache-dir", "{d}/afile"], "is a file, not a folder"),
    (["check", "{d}/truncated.tflite"], "truncated.tflite"),
    (["check", "{d}/missing.keras"], "does not exist"),
    (["inspect", "{d}/truncated.tflite"], "truncated.tflite"),
    (["inspect", "{d}/adir"], "adir"),
    (["report", "nope", *S], "no run 'nope'"),
    (["report", "--store", "{d}/notastore.sqlite"], "notastore.sqlite"),
    (["report", "--store", "{d}/adir"], "adir"),
    (["runs", "--store", "{d}/notastore.sqlite"], "notastore.sqlite"),
    (["history", "tiny", "as_given", "--store", "{d}/notastore.sqlite"], "notastore.sqlite"),
    (["changes", "--store", "{d}/notastore.sqlite"], "notastore.sqlite"),
    (["changes", *S, "--model", "nope"], "no stored rows for model 'nope'"),
    (["changes", *S, "--format", "html", "--out", "{d}/adir"], "adir"),
    (["compare", "nope", "nope2", *S], "no run 'nope'"),
    (["compare", "latest", "latest", *S, "--max-latency-regression", "lots"], "lots"),
    (["devices", "--profiles", "{d}/afile"], "afile"),
    (["lab", "resources", "--profiles", "{d}/afile", "--no-server"], "afile"),
]


@pytest.mark.parametrize("args, fragment", USAGE, ids=[" ".join(a[:1] + a[-2:])[:60] for a, _ in USAGE])
def test_bad_input_is_a_usage_error(d, args, fragment):
    proc = run_cli(*[a.format(d=d) for a in args], timeout=120)
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-1500:], proc.stderr[-1500:])
    assert "Traceback" not in proc.stderr
    assert fragment in proc.stderr, proc.stderr
    if proc.stderr.startswith("error:"):
        assert proc.stderr.strip().count("\n") == 0, proc.stderr


def test_resume_takes_the_folder_a_run_wrote(d):
    """`--resume results/<run>/` (the --out folder) finds that run: nothing is missing, nothing runs."""
    proc = run_cli("run", "--resume", str(d / "run"), *[a.format(d=d) for a in S], "--cache-dir", str(d / "cache"),
                   timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "1 row(s) already stored" in proc.stdout


def test_a_truncated_tflite_in_a_run_is_a_reasoned_row(d):
    """The same bad file that `check` refuses is one row of a run, which goes on."""
    proc = run_cli("run", "--model", str(d / "truncated.tflite"), "--model", str(TINY), "--runs", "2",
                   "--min-seconds", "0", "--eval-samples", "2", "--out", str(d / "run_bad"),
                   "--store", str(d / "s3.sqlite"), "--cache-dir", str(d / "cache"), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {r["model"]: r for r in json.loads((d / "run_bad" / "results.json").read_text())}
    assert rows["tiny"]["status"] == "ok"
    assert rows["truncated"]["status"] == "runtime_failed" and "truncated.tflite" in rows["truncated"]["reason"]
