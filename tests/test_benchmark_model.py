"""Tests for harness.devices.benchmark_model: real fixture texts, argv building, failure
classification, the raw output-file decoder, a fuzz test, and the stand-in binary."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.devices.benchmark_model import (
    BenchmarkOutput,
    BenchmarkOutputError,
    BenchmarkSettings,
    build_args,
    classify_failure,
    decode_output_file,
    parse_output,
    shell_command,
)

FIXTURES = Path("/work/shared/fixtures/benchmark_model")
STAND_IN = Path(__file__).parent / "support" / "benchmark_model"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


needs_fixtures = pytest.mark.skipif(not FIXTURES.is_dir(), reason="fixture directory missing")


# --------------------------------------------------------------------------- fixtures


@needs_fixtures
def test_every_fixture_file_is_read():
    files = sorted(FIXTURES.glob("*.txt"))
    assert len(files) >= 9
    for path in files:
        out = parse_output(path.read_text())
        assert isinstance(out, BenchmarkOutput), path.name
        assert out.has_timing, path.name
        assert out.errors == [], path.name


@needs_fixtures
def test_info_prefix_percentiles():
    out = parse_output(fixture("info_prefix_percentiles.txt"))
    assert out.init_us == 207799
    assert out.first_us == 90710
    assert out.warmup_avg_us == 48230.2
    assert out.inference_avg_us == 42394.8
    assert out.warmup is not None and out.warmup.count == 11 and out.warmup.std_us == 13845
    inf = out.inference
    assert inf is not None
    assert (inf.count, inf.first_us, inf.curr_us) == (24, 42468, 41938)
    assert (inf.min_us, inf.max_us, inf.avg_us, inf.std_us) == (41938, 42840, 42394.8, 188)
    assert (inf.p5_us, inf.median_us, inf.p95_us) == (42133, 42419, 42671)
    assert out.delegate == "TfLiteXNNPackDelegate"
    assert (out.delegated_nodes, out.total_nodes, out.partitions) == (2136, 2168, 65)
    assert out.fully_delegated is False
    assert out.delegate_coverage == pytest.approx(2136 / 2168)
    assert out.model_size_mb == 8.45746
    assert (out.init_memory_mb, out.overall_memory_mb) == (23.5938, 26.6797)


@needs_fixtures
def test_gpu_legacy_no_prefix():
    out = parse_output(fixture("gpu_legacy_no_prefix.txt"))
    assert out.delegate == "GPU"
    assert out.fully_delegated is True
    assert out.delegate_coverage == 1.0
    assert out.init_us == 870557
    assert out.warmup is not None and (out.warmup.count, out.warmup.avg_us) == (4, 122373)
    assert out.inference is not None
    assert (out.inference.count, out.inference.avg_us, out.inference.std_us) == (50, 119375, 1948)
    assert out.inference.p5_us is None and out.inference.median_us is None
    assert out.inference_avg_us == 119375
    assert out.model_size_mb == 7.07479


@needs_fixtures
def test_scientific_notation():
    out = parse_output(fixture("scientific_notation_memory.txt"))
    assert out.inference_avg_us == 30249600.0
    assert out.warmup_avg_us == 28950900.0
    assert out.first_us == 28950882
    assert out.init_us == 58937
    assert (out.init_memory_mb, out.overall_memory_mb) == (27.5234, 357.723)
    assert out.inference is None and out.warmup is None


@needs_fixtures
def test_logcat_line():
    out = parse_output(fixture("logcat_line.txt"))
    assert out.init_us == 36618
    assert out.first_us == 1530248
    assert out.warmup_avg_us == 1530250.0
    assert out.inference_avg_us == 1497120.0


@needs_fixtures
def test_legacy_average_line():
    out = parse_output(fixture("legacy_average_line.txt"))
    assert (out.warmup_avg_us, out.init_us, out.inference_avg_us) == (83235, 38467, 79760.9)
    # the "Timings (microseconds):" line is the timed runs when no bare count= line exists
    assert out.inference is not None
    assert (out.inference.count, out.inference.avg_us, out.inference.std_us) == (50, 79732, 1929)
    assert out.warmup is None
    assert (out.init_memory_mb, out.overall_memory_mb) == (63.4883, 63.4883)
    assert out.peak_memory_mb is None


@needs_fixtures
def test_litert_cpu_xnnpack_run():
    out = parse_output(fixture("litert_cpu_xnnpack_run.txt"))
    assert (out.num_threads, out.graph, out.min_num_runs) == (1, "cnn.tflite", 20)
    assert out.delegate == "XNNPACK"
    assert out.init_us == 1769
    assert out.warmup is not None and out.warmup.count == 11823
    assert out.inference is not None
    assert (out.inference.count, out.inference.max_us, out.inference.p95_us) == (23272, 2939, 56)
    assert out.inference_avg_us == 41.7729
    assert out.model_size_mb == 0.008828
    assert (out.init_memory_mb, out.overall_memory_mb) == (4.30078, 5.17578)
    assert out.delegated_nodes is None and out.delegate_coverage is None


@needs_fixtures
def test_litert_input_files_output_filepath():
    out = parse_output(fixture("litert_input_files_output_filepath.txt"))
    assert out.init_us == 1149
    assert out.inference is not None and out.inference.count == 22214
    assert out.inference_avg_us == 44.0042
    assert out.overall_memory_mb == 4.78906


@needs_fixtures
def test_litert_op_profiling_peak_memory():
    out = parse_output(fixture("litert_op_profiling_peak_memory.txt"))
    assert out.peak_memory_mb == 24.5625
    assert out.vm_rss_mb == 24
    assert (out.num_threads, out.graph, out.min_num_runs) == (2, "model.tflite", 30)
    # the profiler's own "Timings (microseconds): count=1 curr=14096" must not win
    assert out.inference is not None and out.inference.count == 167
    assert out.inference.avg_us == 5862.23
    assert out.warmup is not None and out.warmup.count == 90
    rows = out.op_profile
    assert len(rows) == 69  # Run Order table of the regular runs only
    first = rows[0]
    assert first.node_type == "Convolution (NHWC, F32) IGEMM"
    assert first.name == "Delegate/Convolution (NHWC, F32) IGEMM:0"
    assert (first.first_ms, first.avg_ms, first.percent, first.cdf_percent) == (
        0.623,
        0.561,
        10.101,
        10.101,
    )
    assert (first.mem_kb, first.times_called) == (0.0, 1)
    assert rows[-1].name == "Delegate/Fully Connected (NC, F32) GEMM:68"
    assert rows[-1].cdf_percent == 100.0
    assert all("ModifyGraphWithDelegate" not in r.name for r in rows)


@needs_fixtures
def test_old_op_profile_row_format():
    out = parse_output(fixture("op_profile_row.txt"))
    assert len(out.op_profile) == 1
    row = out.op_profile[0]
    assert row.node_type == "CONV_2D"
    assert row.name == "MobilenetV1/MobilenetV1/Conv2d_0/Relu6"  # brackets removed
    assert (row.first_ms, row.avg_ms, row.percent, row.cdf_percent) == (4.269, 4.269, 0.107, 0.107)
    assert (row.mem_kb, row.times_called) == (0.0, 0)
    assert out.inference_avg_us is None


# --------------------------------------------------------------------------- parser edges


@needs_fixtures
def test_crlf_ansi_and_logcat_framing():
    text = fixture("info_prefix_percentiles.txt")
    framed = "".join(
        f"\x1b[32m03-15 14:00:51.294 12836 12836 I tflite  : {line}\x1b[0m\r\n"
        for line in text.splitlines()
    )
    out = parse_output(framed)
    assert out.inference is not None and out.inference.median_us == 42419
    assert out.init_us == 207799
    assert out.partitions == 65


def test_initialized_session_used_when_summary_missing():
    text = (
        "INFO: Initialized session in 207.799ms.\n"
        "INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds\n"
        "INFO: count=3 first=10 curr=12 min=10 max=14 avg=12 std=1\n"
        "INFO: Running benchmark for at least 50 iterations and at least 1 seconds\n"
        "INFO: count=50 first=9 curr=9 min=8 max=11 avg=9.5 std=1\n"
    )
    out = parse_output(text)
    assert out.init_us == 207799
    assert out.warmup_avg_us == 12 and out.inference_avg_us == 9.5
    assert out.first_us == 10


def test_single_count_line_after_one_header_is_warmup():
    text = (
        "INFO: Initialized session in 5ms.\n"
        "INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds\n"
        "INFO: count=1 curr=700\n"
        "ERROR: Node number 3 (CONV_2D) failed to invoke.\n"
    )
    out = parse_output(text)
    assert out.warmup is not None and out.warmup.avg_us == 700 and out.warmup.std_us == 0
    assert out.inference is None and out.inference_avg_us is None
    assert out.errors == ["ERROR: Node number 3 (CONV_2D) failed to invoke."]


def test_single_count_line_without_header_is_inference():
    out = parse_output("count=5 curr=100(all same)\n")
    assert out.inference is not None and out.inference.count == 5
    assert out.inference.min_us == out.inference.max_us == 100


def test_no_timing_raises_with_first_error():
    text = (
        "INFO: STARTING!\n"
        "INFO: Graph: [m.tflite]\n"
        "ERROR: Didn't find op for builtin opcode 'CONV_2D' version '6'\n"
        "ERROR: Registration failed.\n"
    )
    with pytest.raises(BenchmarkOutputError) as info:
        parse_output(text)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("benchmark_model printed no timings: ERROR: Didn't find op")
    assert info.value.partial is not None and info.value.partial.graph == "m.tflite"


def test_empty_output_raises():
    with pytest.raises(BenchmarkOutputError, match="no timings"):
        parse_output("")


# --------------------------------------------------------------------------- fuzz

_TEXTS = (
    [p.read_text() for p in sorted(FIXTURES.glob("*.txt"))]
    if FIXTURES.is_dir()
    else ["INFO: count=3 first=1 curr=2 min=1 max=3 avg=2 std=1\n"]
)


@st.composite
def mutated_fixture(draw):
    text = draw(st.sampled_from(_TEXTS))
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["delete", "insert", "replace", "truncate", "dup_line"]))
        pos = draw(st.integers(0, len(text)))
        if op == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 40)) :]
        elif op == "insert":
            junk = draw(
                st.one_of(
                    st.text(max_size=20),
                    st.sampled_from(
                        ["=", ":", "\t", "\n", "count=", "e+99", "9" * 5000, "nan", "[", "%", "\r"]
                    ),
                )
            )
            text = text[:pos] + junk + text[pos:]
        elif op == "replace":
            text = text[:pos] + draw(st.characters()) + text[pos + 1 :]
        elif op == "truncate":
            text = text[:pos]
        else:
            lines = text.splitlines(keepends=True)
            if lines:
                i = draw(st.integers(0, len(lines) - 1))
                lines.insert(i, lines[i])
                text = "".join(lines)
    return text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_fixture())
def test_fuzz_parse_output_only_raises_its_own_error(text):
    try:
        out = parse_output(text)
    except BenchmarkOutputError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(out, BenchmarkOutput)
    out.delegate_coverage  # noqa: B018 - must not raise either
    classify_failure(text, None)


# --------------------------------------------------------------------------- arguments


def test_build_args_maps_every_setting():
    s = BenchmarkSettings(
        num_threads=4,
        num_runs=30,
        warmup_runs=2,
        min_secs=2.5,
        warmup_min_secs=0.25,
        max_secs=60,
        op_profiling=True,
    )
    argv = build_args(
        "/data/local/tmp/benchmark_model",
        "/data/local/tmp/m.tflite",
        s,
        input_layers=[
            ("serving_default_img:0", (1, 8, 8, 1), "/data/local/tmp/in.bin"),
            ("mask", (1, 4), ""),
        ],
        output_filepath="/data/local/tmp/out.bin",
        signature="serving_default",
        extra={"use_caching": "true"},
    )
    assert argv[0] == "/data/local/tmp/benchmark_model"
    assert argv[1:] == [
        "--graph=/data/local/tmp/m.tflite",
        "--num_threads=4",
        "--num_runs=30",
        "--warmup_runs=2",
        "--min_secs=2.5",
        "--warmup_min_secs=0.25",
        "--max_secs=60.0",
        "--use_xnnpack=true",
        "--report_peak_memory_footprint=true",
        "--enable_op_profiling=true",
        "--input_layer=serving_default_img:0,mask",
        "--input_layer_shape=1,8,8,1:1,4",
        "--input_layer_value_files=serving_default_img::0:/data/local/tmp/in.bin",
        "--output_filepath=/data/local/tmp/out.bin",
        "--signature_to_run_for=serving_default",
        "--use_caching=true",
    ]


@pytest.mark.parametrize(
    ("delegate", "present", "absent"),
    [
        ("xnnpack", ["--use_xnnpack=true"], ["--use_gpu=true", "--use_nnapi=true"]),
        ("none", ["--use_xnnpack=false"], ["--use_gpu=true", "--use_nnapi=true"]),
        ("gpu", ["--use_gpu=true"], ["--use_xnnpack=true", "--use_nnapi=true"]),
        ("nnapi", ["--use_nnapi=true"], ["--use_xnnpack=true", "--use_gpu=true"]),
    ],
)
def test_build_args_delegates(delegate, present, absent):
    argv = build_args("bm", "m.tflite", BenchmarkSettings(delegate=delegate))
    for flag in present:
        assert flag in argv
    for flag in absent:
        assert flag not in argv


def test_build_args_defaults_and_rejections():
    argv = build_args("bm", "m.tflite", BenchmarkSettings(report_peak_memory=False))
    assert argv == [
        "bm",
        "--graph=m.tflite",
        "--num_threads=1",
        "--num_runs=50",
        "--warmup_runs=1",
        "--min_secs=1.0",
        "--use_xnnpack=true",
    ]
    with pytest.raises(ValueError, match="delegate"):
        build_args("bm", "m.tflite", BenchmarkSettings(delegate="tpu"))
    with pytest.raises(ValueError, match="','"):
        build_args("bm", "m", BenchmarkSettings(), input_layers=[("a,b", (1,), "")])
    with pytest.raises(ValueError, match="unknown dimensions"):
        build_args("bm", "m", BenchmarkSettings(), input_layers=[("a", (-1, 3), "")])
    with pytest.raises(ValueError, match="flag name"):
        build_args("bm", "m", BenchmarkSettings(), extra={"x; rm": "1"})


def test_colon_in_path_is_escaped_too():
    argv = build_args("bm", "m", BenchmarkSettings(), input_layers=[("in:0", (1,), "C:/x:y.bin")])
    assert "--input_layer_value_files=in::0:C::/x::y.bin" in argv


def test_shell_command_keeps_hostile_names_inert(tmp_path):
    marker = tmp_path / "pwned"
    hostile_graph = f"a; touch {marker}"
    argv = build_args(
        "echo",
        hostile_graph,
        BenchmarkSettings(),
        input_layers=[("$(id)", (1, 2), "/tmp/my file.bin"), ("`id` x", (3,), "")],
    )
    cmd = shell_command(argv)
    result = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, check=True)
    assert not marker.exists()
    # echo prints its arguments joined by single spaces: exactly argv[1:], nothing expanded
    assert result.stdout == " ".join(argv[1:]) + "\n"
    assert "$(id)" in result.stdout and "uid=" not in result.stdout
    assert f"--graph={hostile_graph}" in result.stdout


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("text", "rc", "category", "needle"),
    [
        (
            "/system/bin/sh: /data/local/tmp/benchmark_model: not found",
            127,
            "missing_binary",
            "set runner.benchmark_model in the device profile",
        ),
        ("sh: benchmark_model: not found", None, "missing_binary", "not found on the device"),
        ("", 127, "missing_binary", "runner.benchmark_model"),
        (
            "/data/local/tmp/benchmark_model: cannot execute binary file: Exec format error",
            126,
            "wrong_abi",
            "wrong ABI",
        ),
        ("bash: ./benchmark_model: cannot execute binary file", None, "wrong_abi", "wrong ABI"),
        ("", 126, "wrong_abi", "ABI"),
        (
            "INFO: Initialized session in 3ms.\nSegmentation fault",
            139,
            "crash",
            "crashed with signal 11 (SIGSEGV)",
        ),
        ("", -6, "crash", "crashed with signal 6 (SIGABRT)"),
        ("Segmentation fault", None, "crash", "SIGSEGV"),
        (
            "ERROR: Encountered unresolved custom op: FlexConv2D.\n"
            "ERROR: Node number 0 (FlexConv2D) failed to prepare.",
            1,
            "unsupported",
            "FlexConv2D",
        ),
        ("ERROR: Encountered unresolved custom op: MyCustomOp.", 1, "unsupported", "MyCustomOp"),
        (
            "ERROR: Didn't find op for builtin opcode 'STABLEHLO_COMPOSITE' version '1'. An older "
            "version of this builtin might be supported.",
            1,
            "unsupported",
            "STABLEHLO_COMPOSITE",
        ),
        ("adb: error: failed to copy: No space left on device", 1, "out_of_space", "space"),
        (
            "ERROR: Could not open 'm.tflite'.\nERROR: Failed to mmap model m.tflite",
            1,
            "error",
            "Could not open",
        ),
    ],
)
def test_classify_failure(text, rc, category, needle):
    cat, reason = classify_failure(text, rc)
    assert cat == category
    assert needle in reason
    assert "\n" not in reason


@needs_fixtures
def test_classify_success():
    assert classify_failure(fixture("litert_cpu_xnnpack_run.txt"), 0)[0] == "ok"


def test_missing_binary_reason_is_exact():
    assert classify_failure("", 127) == (
        "missing_binary",
        "benchmark_model not found on the device; set runner.benchmark_model in the device profile",
    )


# --------------------------------------------------------------------------- output file


def test_decode_output_file_round_trip():
    a = np.arange(6, dtype=np.float32).reshape(1, 2, 3) / 7
    b = np.array([[-128, 0, 127]], dtype=np.int8)
    c = np.array([1, 2], dtype=np.int64)
    data = a.tobytes() + b.tobytes() + c.tobytes()
    got = decode_output_file(
        data, [("a", (1, 2, 3), "float32"), ("b", (1, 3), "int8"), ("c", (2,), "int64")]
    )
    for want, have in zip([a, b, c], got, strict=True):
        assert have.dtype == want.dtype and have.shape == want.shape
        np.testing.assert_array_equal(have, want)
    assert got[0].flags.writeable


def test_decode_output_file_size_mismatch():
    with pytest.raises(BenchmarkOutputError, match="7 bytes"):
        decode_output_file(b"\0" * 7, [("a", (2,), "float32")])
    with pytest.raises(ValueError, match="dtype"):
        decode_output_file(b"", [("a", (0,), "not-a-dtype")])


# --------------------------------------------------------------------------- stand-in binary


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A two-output float model converted with TensorFlow (input tensor name has a ':')."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    tf = pytest.importorskip("tensorflow")

    class Tiny(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.constant(np.arange(12, dtype=np.float32).reshape(4, 3) / 10)

        @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32, name="x")])
        def __call__(self, x):
            return {"y": tf.nn.relu(tf.matmul(x, self.w)), "s": tf.reduce_sum(x, 1, keepdims=True)}

    module = Tiny()
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.__call__.get_concrete_function()], module
    )
    path = tmp_path_factory.mktemp("tiny") / "tiny model.tflite"  # a space, on purpose
    path.write_bytes(converter.convert())
    return path


def run_stand_in(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(STAND_IN), *argv[1:]],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_stand_in_is_marked_and_executable():
    text = STAND_IN.read_text()
    assert text.startswith("#!/usr/bin/env python3\n")
    assert "STAND-IN" in text[:300]
    assert os.access(STAND_IN, os.X_OK)


@pytest.mark.slow
def test_stand_in_runs_model_and_writes_outputs(tiny_model, tmp_path):
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    interp = litert.Interpreter(model_path=str(tiny_model))
    interp.allocate_tensors()
    (inp,) = interp.get_input_details()
    outs = interp.get_output_details()
    x = np.array([[1.0, -2.0, 3.0, 0.5]], dtype=np.float32)
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    expected = [interp.get_tensor(o["index"]).copy() for o in outs]

    in_file = tmp_path / "in.bin"
    x.tofile(in_file)
    out_file = tmp_path / "out.bin"
    argv = build_args(
        str(STAND_IN),
        str(tiny_model),
        BenchmarkSettings(num_runs=20, min_secs=0.05, warmup_min_secs=0.02),
        input_layers=[(inp["name"], tuple(int(d) for d in inp["shape"]), str(in_file))],
        output_filepath=str(out_file),
    )
    assert "::0:" in " ".join(argv)  # the tensor name has a colon: escaped
    proc = run_stand_in(argv)
    assert proc.returncode == 0, proc.stderr
    out = parse_output(proc.stdout + proc.stderr)
    assert out.graph == str(tiny_model)
    assert (out.num_threads, out.min_num_runs) == (1, 20)
    assert out.delegate == "XNNPACK"
    assert out.warmup is not None and out.inference is not None
    assert out.inference.count >= 20
    assert out.inference.min_us <= out.inference.median_us <= out.inference.max_us
    assert out.inference.p5_us is not None and out.inference.p95_us is not None
    assert out.init_us is not None and out.init_us >= 0
    assert out.inference_avg_us == pytest.approx(out.inference.avg_us, rel=1e-5)
    assert out.overall_memory_mb is not None and out.peak_memory_mb is not None
    assert out.vm_rss_mb is not None
    assert out.errors == []
    assert classify_failure(proc.stdout + proc.stderr, proc.returncode)[0] == "ok"

    specs = [
        (o["name"], tuple(int(d) for d in o["shape"]), np.dtype(o["dtype"]).name) for o in outs
    ]
    decoded = decode_output_file(out_file.read_bytes(), specs)
    for want, have in zip(expected, decoded, strict=True):
        np.testing.assert_array_equal(have, want)


@needs_fixtures
@pytest.mark.slow
def test_stand_in_output_has_the_real_line_shapes(tiny_model):
    """Same line kinds, in the same order, as the real tool's litert_cpu_xnnpack_run.txt."""
    import re

    def shapes(text: str) -> list[str]:
        kinds = []
        for line in text.splitlines():
            if not line.strip():
                continue
            line = re.sub(r"\[.*\]", "[]", line)
            line = re.sub(r"Loaded model .*", "Loaded model PATH", line)
            kinds.append(re.sub(r"[-+]?\d+(\.\d+)?(e[-+]\d+)?", "N", line))
        return kinds

    argv = [str(STAND_IN), f"--graph={tiny_model}", "--num_runs=20", "--num_threads=1"]
    argv += ["--min_secs=0.05", "--warmup_min_secs=0.02"]
    proc = run_stand_in(argv)
    assert proc.returncode == 0, proc.stderr
    real = shapes(fixture("litert_cpu_xnnpack_run.txt"))
    ours = shapes(proc.stdout)
    # the stand-in echoes the two duration flags we passed; the fixture run did not pass them
    ours = [k for k in ours if "duration (seconds)" not in k]
    assert ours == real


def test_stand_in_missing_graph(tmp_path):
    proc = run_stand_in(["bm", f"--graph={tmp_path / 'nope.tflite'}"])
    assert proc.returncode == 1
    assert "ERROR: Could not open" in proc.stderr
    with pytest.raises(BenchmarkOutputError, match="printed no timings: ERROR: Could not open"):
        parse_output(proc.stdout + proc.stderr)
    assert classify_failure(proc.stdout + proc.stderr, proc.returncode)[0] == "error"


@pytest.mark.slow
def test_stand_in_rejects_wrong_input_file_size(tiny_model, tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\0" * 3)
    argv = build_args(
        str(STAND_IN),
        str(tiny_model),
        BenchmarkSettings(),
        input_layers=[("serving_default_x:0", (1, 4), str(bad))],
    )
    proc = run_stand_in(argv)
    assert proc.returncode == 1
    assert "It should be 16 bytes" in proc.stderr
