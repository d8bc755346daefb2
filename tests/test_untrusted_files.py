"""Untrusted files (issue 22): every .tflite and sample file gets a clear answer, never a crash.

The contract, for `inspect`, `check` and `run`: exit 0, or exit 2 with one line, or a row
with a status and a reason; never a traceback, a signal or a hang.

- The verifier (harness/tflite/verify.py) passes every real model we have, and a seeded,
  time-bounded mutation fuzz (bit flips, zeroed regions, bad offsets, truncation, splices)
  over the bundled models' artifacts (tests/data/fuzz/) gets either a model or one
  TFLiteFormatError line, in process.
- Mutants that pass the verifier go to LiteRT's native code only in a child: the analyzer
  answers or raises NativeCrash (one line); the runner gives a reasoned row.
- The crashers the fuzz found are kept in tests/data/fuzz/crash-analyzer-*.tflite.
- A sparse 4 GiB file and a .npz that declares a huge array are refused quickly, with the
  size and the limit.
"""

from __future__ import annotations

import json
import random
import struct
import time
from pathlib import Path

import pytest

from harness.tflite.file import TFLiteFormatError, read_tflite
from harness.tflite.verify import MAX_FLATBUFFER, VerifyError, verify_buffer

from .conftest import ROOT, run_cli

DATA = ROOT / "tests" / "data"
SEEDS = sorted((DATA / "fuzz").glob("digits_*.tflite")) + sorted((DATA / "fuzz").glob("lstm_*.tflite")) + [
    DATA / "fuzz" / "tiny-metadata.tflite", DATA / "tiny.tflite", DATA / "hang.tflite"]
CRASHERS = sorted((DATA / "fuzz").glob("crash-analyzer-*.tflite"))
FUZZ_SECONDS = 15.0


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One random damage of the kinds users' downloads have."""
    b = bytearray(data)
    kind = rng.randrange(5)
    if kind == 0:
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    elif kind == 1:
        i, n = rng.randrange(len(b)), rng.randrange(1, 64)
        b[i : i + n] = bytes(len(b[i : i + n]))
    elif kind == 2:
        i = rng.randrange(0, len(b) - 4) & ~3
        b[i : i + 4] = struct.pack("<I", rng.choice(
            [0, 1, 3, 0x7FFFFFFF, 0xFFFFFFFF, rng.randrange(1 << 32), rng.randrange(len(b))]))
    elif kind == 3:
        b = b[: rng.randrange(len(b))]
    else:
        i, j = sorted(rng.randrange(len(b)) for _ in range(2))
        n = rng.randrange(1, 256)
        b[i : i + n] = data[j : j + n]
    return bytes(b)


def one_line_error(proc) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-500:], proc.stderr[-2000:])
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def corpus() -> dict[str, list[bytes]]:
    """Seeded mutants of every seed, split by what the verifier says (bounded in time)."""
    rng = random.Random(22)
    out: dict[str, list[bytes]] = {"passed": [], "refused": []}
    seeds = [p.read_bytes() for p in SEEDS]
    deadline = time.monotonic() + FUZZ_SECONDS
    for k in range(600):
        if time.monotonic() > deadline:
            break
        m = mutate(seeds[k % len(seeds)], rng)
        try:
            verify_buffer(m)
            out["passed"].append(m)
        except VerifyError:
            out["refused"].append(m)
    return out


def test_the_verifier_passes_every_real_model():
    for p in SEEDS + sorted(DATA.glob("*.tflite")):
        verify_buffer(p.read_bytes())
        assert read_tflite(p).num_subgraphs >= 1


def test_mutants_get_a_model_or_one_line(corpus):
    """In process: read_tflite and inspect/check's reading either work or raise one TFLiteFormatError."""
    from harness.tflite.check import check_tflite
    from harness.tflite.inspect import inspect_tflite

    total = len(corpus["passed"]) + len(corpus["refused"])
    assert total >= 200, f"only {total} mutants in {FUZZ_SECONDS} s"
    assert corpus["passed"] and corpus["refused"]
    outcomes = {"model": 0, "refused": 0}
    for m in corpus["passed"] + corpus["refused"][:150]:
        try:
            read_tflite(m)
            outcomes["model"] += 1
        except TFLiteFormatError as exc:
            assert "\n" not in str(exc) and str(exc).startswith("<bytes>: ")
            outcomes["refused"] += 1
            continue
    assert outcomes["model"] and outcomes["refused"]
    folder = Path(__import__("tempfile").mkdtemp(prefix="fuzz-"))
    for i, m in enumerate(corpus["passed"][:20]):
        path = folder / f"m{i}.tflite"
        path.write_bytes(m)
        for describe in (inspect_tflite, check_tflite):
            try:
                json.dumps(describe(path, analyzer=False), default=str)
            except TFLiteFormatError as exc:  # the reader's own semantic checks
                assert "\n" not in str(exc)
            except Exception as exc:  # noqa: BLE001 - the assertion names what escaped
                from harness.core.errors import UsageError

                assert isinstance(exc, UsageError), f"m{i}: {type(exc).__name__}: {exc}"


def test_verified_mutants_meet_the_analyzer_only_in_a_child(corpus, tmp_path):
    """LiteRT's analyzer on mutants that passed: a verdict, or NativeCrash (never a dead test process)."""
    from harness.tflite.native import NativeCrash, run_analyzer

    answered = 0
    for i, m in enumerate(corpus["passed"][:12]):
        path = tmp_path / f"p{i}.tflite"
        path.write_bytes(m)
        try:
            ran, text = run_analyzer(path, timeout_s=30)
            answered += 1
            assert ran or "analyzer" in text
        except NativeCrash as exc:
            assert "died with" in str(exc) or "did not finish" in str(exc)
    assert answered


@pytest.mark.parametrize("crasher", CRASHERS, ids=lambda p: p.stem)
def test_kept_crashers_are_one_line_exit_2(crasher):
    """Each of these killed `inspect` with SIGSEGV when the analyzer ran in the CLI process."""
    line = one_line_error(run_cli("inspect", str(crasher), "--no-tensors", timeout=120))
    assert str(crasher) in line and ("SIGSEGV" in line or "re-export" in line), line


@pytest.mark.parametrize("name", ["metadata-bad-offset", "metadata-bad-zip"])
def test_damaged_metadata_is_reported_not_raised(name):
    """These made `inspect` exit 1 with struct.error ("unpack_from requires a buffer of at least
    2147483703 bytes ...") and NotImplementedError from zipfile: the model reads, its metadata is "unreadable"."""
    from harness.tflite.inspect import inspect_tflite

    info = inspect_tflite(DATA / "fuzz" / f"{name}.tflite", analyzer=False)
    meta = info["tflite_metadata"]
    if name == "metadata-bad-offset":
        assert meta["error"].startswith("unreadable TFLITE_METADATA: ") and "\n" not in meta["error"]
    else:  # the metadata reads; the damaged zip gives no files and no labels
        assert meta["name"] == "tiny" and "files" not in meta and "labels" not in meta


def test_cli_on_mutants(corpus, tmp_path):
    """A few real CLI invocations: refused mutants are one line, exit 2; the rest exit 0 or 2."""
    for i, m in enumerate(corpus["refused"][:1] + corpus["passed"][:1]):
        path = tmp_path / f"c{i}.tflite"
        path.write_bytes(m)
        for cmd in ("inspect", "check"):
            proc = run_cli(cmd, str(path), "--json", timeout=120)
            assert "Traceback" not in proc.stderr and proc.returncode in (0, 2), (cmd, i, proc.stderr[-2000:])
            if proc.returncode == 2:
                one_line_error(proc)
            else:
                json.loads(proc.stdout)


@pytest.mark.slow
def test_run_gives_every_bad_file_a_reasoned_row(corpus, tmp_path):
    """`run --model` over mutants, a model with no inputs (once an IndexError that ended the run)
    and a crasher: exit 0, one row each, every failed row with a status and a reason."""
    models = [DATA / "fuzz" / "no-inputs.tflite", DATA / "fuzz" / "crash-analyzer-vtable-zeroed.tflite"]
    for i, m in enumerate(corpus["refused"][:2] + corpus["passed"][:2]):
        models.append(tmp_path / f"r{i}.tflite")
        models[-1].write_bytes(m)
    args = [a for p in models for a in ("--model", str(p))]
    proc = run_cli("run", *args, "--out", str(tmp_path / "out"), "--store", str(tmp_path / "s.sqlite"),
                   "--cache-dir", str(tmp_path / "cache"), "--runs", "2", "--min-seconds", "0",
                   "--warmup-runs", "0", "--eval-samples", "1", "--timeout", "30", timeout=300)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    rows = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(rows) == len(models)
    for row in rows:
        assert row["status"] and (row["status"] == "ok" or row["reason"]), row
    by_model = {r["model"]: r for r in rows}
    assert "lists no inputs" in by_model["no-inputs"]["reason"]
    assert by_model["r0"]["failure_category"] == "load_error" and "re-export" in by_model["r0"]["reason"]


def test_sparse_4_gib_file_is_refused_quickly(tmp_path):
    path = tmp_path / "big.tflite"
    path.write_bytes((DATA / "tiny.tflite").read_bytes())
    with open(path, "r+b") as f:
        f.truncate(4 << 30)  # sparse: no 4 GiB is written
    start = time.monotonic()
    with pytest.raises(TFLiteFormatError) as info:
        read_tflite(path)
    assert time.monotonic() - start < 30  # generous: the point is that nothing reads 4 GiB
    assert "4.0 GiB" in str(info.value) and "2.0 GiB limit" in str(info.value)
    assert MAX_FLATBUFFER == (1 << 31) - 1
    line = one_line_error(run_cli("inspect", str(path)))
    assert "4,294,967,296 bytes" in line and "2.0 GiB limit" in line
    # `run` verifies before it hashes the file for the cache (hashing 4 GiB took 40 s)
    proc = run_cli("run", "--model", str(path), "--out", str(tmp_path / "out"), "--store", str(tmp_path / "s.sqlite"),
                   "--cache-dir", str(tmp_path / "cache"), timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (row,) = json.loads((tmp_path / "out" / "results.json").read_text())
    assert row["failure_category"] == "load_error" and "2.0 GiB limit" in row["reason"]


def test_npz_declaring_a_huge_array_is_refused(tmp_path):
    import io
    import zipfile

    import numpy as np

    from harness.core.samples import SampleError, load_arrays

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (1 << 20, 1 << 20)})
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("x.npy", header.getvalue() + bytes(64))
    with pytest.raises(SampleError) as info:
        load_arrays(bomb, ["x"])
    assert "4096.0 GiB" in str(info.value) and "limit" in str(info.value) or "available" in str(info.value)


def test_native_code_in_a_child_turns_a_signal_into_one_line():
    """call_in_child (how `check` runs each converted artifact on LiteRT): a killed child is NativeCrash."""
    import os

    from harness.tflite.native import NativeCrash, call_in_child

    assert call_in_child(os.getpid) != os.getpid()
    with pytest.raises(NativeCrash, match="died with SIGABRT"):
        call_in_child(os.abort, what="LiteRT")
    with pytest.raises(RuntimeError, match="ValueError"):
        call_in_child(int, "x")
