"""harness.tflite.file against real converted models and against broken bytes.

The models are converted here with TensorFlow (seconds), so those tests are marked slow; the
reader itself must agree with what the LiteRT interpreter reports for the same file, and
must turn every kind of broken file into TFLiteFormatError.
"""

from __future__ import annotations

import dataclasses
import json
import random
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.tflite.file import TFLiteFormatError, TFLiteModel, op_names, read_tflite

slow = pytest.mark.slow  # everything that needs the converted models
pytestmark = pytest.mark.cost(12)  # seconds on one quiet core, for the xdist order (docs/testing.md)

REPO = Path(__file__).resolve().parents[1]


def _convert_all(out: Path) -> dict[str, Path]:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    inp = tf.keras.Input((32,), name="x")
    hidden = tf.keras.layers.Dense(64, activation="relu")(inp)  # 2048 weights: big enough
    keras_model = tf.keras.Model(inp, tf.keras.layers.Dense(4)(hidden))  # to be quantized

    def representative():
        rng = np.random.default_rng(0)
        for _ in range(8):
            yield [rng.random((1, 32), dtype=np.float32)]

    def keras(**options):
        converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
        for key, value in options.items():
            setattr(converter, key, value)
        return converter.convert()

    int8 = {
        "optimizations": [tf.lite.Optimize.DEFAULT],
        "representative_dataset": representative,
    }
    int8["target_spec"] = tf.lite.TargetSpec(supported_ops=[tf.lite.OpsSet.TFLITE_BUILTINS_INT8])

    class Inverse(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([3, 3], tf.float32, name="a")])
        def inv(self, a):
            return {"inv": tf.linalg.inv(a) + 1.0}

    module = Inverse()

    def matrix_inverse(**options):
        fn = module.inv.get_concrete_function()
        converter = tf.lite.TFLiteConverter.from_concrete_functions([fn], module)
        for key, value in options.items():
            setattr(converter, key, value)
        return converter.convert()

    flex_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    blobs = {
        "fp32": keras(),
        "dynamic": keras(optimizations=[tf.lite.Optimize.DEFAULT]),
        "int8": keras(**int8),
        "int8_io": keras(**int8, inference_input_type=tf.int8, inference_output_type=tf.int8),
        "flex": matrix_inverse(target_spec=tf.lite.TargetSpec(supported_ops=flex_ops)),
        "custom": matrix_inverse(allow_custom_ops=True),
    }
    paths = {}
    for name, blob in blobs.items():
        paths[name] = out / f"{name}.tflite"
        paths[name].write_bytes(blob)
    return paths


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    with warnings.catch_warnings():  # int8 io: "Statistics for quantized inputs ..." is expected
        warnings.simplefilter("ignore", UserWarning)
        return _convert_all(tmp_path_factory.mktemp("tflite_file"))


@pytest.fixture(scope="module")
def int8_bytes(models) -> bytes:
    return models["int8"].read_bytes()


def _interpreter(path: Path):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(path))


def test_import_does_not_pull_in_tensorflow():
    code = (
        "import sys, harness.tflite.file as m;"
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported';"
        "m._schema();"  # the lazily imported schema must not bring it in either
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported by the schema'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


@slow
@pytest.mark.parametrize("name", ["fp32", "dynamic", "int8", "int8_io", "flex", "custom"])
def test_tensors_and_signatures_match_the_interpreter(models, name):
    model = read_tflite(models[name])
    interpreter = _interpreter(models[name])
    for ours, theirs in [
        (model.inputs, interpreter.get_input_details()),
        (model.outputs, interpreter.get_output_details()),
        (model.tensors, interpreter.get_tensor_details()),
    ]:
        assert [t.index for t in ours] == [d["index"] for d in theirs]
        for tensor, detail in zip(ours, theirs, strict=True):
            assert tensor.name == detail["name"]
            assert tensor.shape == tuple(detail["shape"])
            assert tensor.dtype == np.dtype(detail["dtype"]).name
            q = detail["quantization_parameters"]
            if tensor.quantization is None:
                assert len(q["scales"]) == 0
            else:
                np.testing.assert_allclose(tensor.quantization.scales, q["scales"], rtol=1e-6)
                assert tensor.quantization.zero_points == tuple(int(z) for z in q["zero_points"])
                assert tensor.quantization.quantized_dimension == q["quantized_dimension"]
    expected = {
        key: {side: sorted(names) for side, names in sig.items()}
        for key, sig in interpreter.get_signature_list().items()
    }
    ours = {
        s.key: {"inputs": sorted(s.inputs), "outputs": sorted(s.outputs)} for s in model.signatures
    }
    assert ours == expected
    runner = {s.key: s for s in model.signatures}["serving_default"]
    assert sorted(runner.inputs.values()) == sorted(t.index for t in model.inputs)
    assert model.num_subgraphs == 1 and model.schema_version == 3
    assert model.size_bytes == models[name].stat().st_size
    json.dumps(model.to_dict())  # JSON-ready


@slow
def test_float_model(models):
    model = read_tflite(models["fp32"])
    assert model.op_names == ["FULLY_CONNECTED"] == op_names(models["fp32"])
    assert model.operators[0].count == 2 and model.operators[0].kind == "builtin"
    assert model.operator_sequence == ("FULLY_CONNECTED", "FULLY_CONNECTED")
    assert not model.is_quantized and model.float_ops_in_quantized == []
    assert model.inputs[0].dtype == "float32" and model.inputs[0].shape_signature == (-1, 32)
    # The kernels only: the converter drops all-zero biases (bias input becomes -1).
    assert model.weights_bytes == 4 * (32 * 64 + 64 * 4)
    assert model.operator_io[0][0][-1] == -1
    assert sum(t.buffer_bytes for t in model.tensors) == model.weights_bytes
    assert all(t.buffer_bytes == 0 for t in model.inputs + model.outputs)
    assert model.min_runtime_version and model.min_runtime_version[0].isdigit()
    assert "\x00" not in model.min_runtime_version
    assert "CONVERSION_METADATA" in model.metadata
    from_bytes = read_tflite(models["fp32"].read_bytes())
    assert from_bytes.path is None and model.path == str(models["fp32"])
    assert from_bytes == dataclasses.replace(model, path=None)


@slow
def test_dynamic_range_model_has_int8_weights_and_hybrid_ops(models):
    model = read_tflite(models["dynamic"])
    weights = [t for t in model.tensors if t.dtype == "int8"]
    assert weights and all(t.quantization is not None for t in weights)
    assert model.is_quantized
    assert model.inputs[0].dtype == "float32"
    # The big FULLY_CONNECTED takes float activations with int8 weights: a hybrid op.
    assert (0, "FULLY_CONNECTED") in model.float_ops_in_quantized
    assert model.weights_bytes < read_tflite(models["fp32"]).weights_bytes


@slow
def test_full_int8_with_float_io_has_quantize_dequantize(models):
    model = read_tflite(models["int8"])
    assert model.operator_sequence[0] == "QUANTIZE"
    assert model.operator_sequence[-1] == "DEQUANTIZE"
    assert {"FULLY_CONNECTED", "QUANTIZE", "DEQUANTIZE"} <= set(model.op_names)
    assert model.is_quantized and model.float_ops_in_quantized == []
    assert model.inputs[0].dtype == "float32" and model.inputs[0].quantization is None
    int8_io = read_tflite(models["int8_io"])
    assert int8_io.inputs[0].dtype == int8_io.outputs[0].dtype == "int8"
    assert int8_io.inputs[0].quantization is not None
    assert len(int8_io.inputs[0].quantization.scales) == 1
    assert "QUANTIZE" not in int8_io.op_names


@slow
def test_flex_and_custom_ops(models):
    flex = read_tflite(models["flex"])
    assert flex.flex_ops == ["FlexMatrixInverse"] and flex.custom_ops == []
    assert {op.name: op.kind for op in flex.operators} == {
        "FlexMatrixInverse": "flex",
        "ADD": "builtin",
    }
    custom = read_tflite(models["custom"])
    assert custom.custom_ops == ["MatrixInverse"] and custom.flex_ops == []
    assert custom.to_dict()["custom_ops"] == ["MatrixInverse"]


@slow
def test_buffers_stored_after_the_flatbuffer(models):
    """Models over 2 GB keep weights after the flatbuffer (Buffer.offset/size); same answers."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.interpreter import Interpreter

    original = models["dynamic"].read_bytes()
    tree = schema.ModelT.InitFromPackedBuf(bytearray(original), 0)
    blobs = [bytes(bytearray(b.data)) if b.data is not None else b"" for b in tree.buffers]

    def pack(offsets):
        for buf, blob, offset in zip(tree.buffers, blobs, offsets, strict=True):
            buf.data, buf.offset, buf.size = None, offset, len(blob)
        builder = flatbuffers.Builder(1024)
        builder.Finish(tree.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())

    head = pack([1 if blob else 0 for blob in blobs])  # placeholders: same packed size
    offsets, tail = [], b""
    for blob in blobs:
        offsets.append(len(head) + len(tail) if blob else 0)
        tail += blob
    data = pack(offsets) + tail
    assert len(data) == len(head) + len(tail)

    moved, inline = read_tflite(data), read_tflite(original)
    assert moved.weights_bytes == inline.weights_bytes
    assert [t.buffer_bytes for t in moved.tensors] == [t.buffer_bytes for t in inline.tensors]
    assert moved.metadata == inline.metadata
    # The runtime reads the rewritten file the same way, so the layout above is the real one.
    x = np.random.default_rng(0).random((1, 32), dtype=np.float32)
    results = []
    for blob in (original, data):
        interpreter = Interpreter(model_content=blob)
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()
        results.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
    np.testing.assert_array_equal(results[0], results[1])
    with pytest.raises(TFLiteFormatError, match="past the end"):
        read_tflite(data[: len(head) + len(tail) // 2])


def _bad_inputs(real: bytes) -> dict[str, bytes]:
    rng = random.Random(1234)
    wrong_id = real[:4] + b"TFL2" + real[8:]
    header_then_garbage = real[:8] + bytes(rng.randrange(256) for _ in range(len(real) - 8))
    cases = {
        "empty": b"",
        "four bytes": real[:4],
        "header only": real[:8],
        "random": bytes(rng.randrange(256) for _ in range(len(real))),
        "zeros": bytes(len(real)),
        "wrong identifier": wrong_id,
        "valid header, garbage offsets": header_then_garbage,
        "root offset past the end": (len(real) + 10).to_bytes(4, "little") + real[4:],
        "zeros with identifier": bytes(4) + b"TFL3" + bytes(len(real) - 8),
    }
    for cut in (16, 64, len(real) // 4, len(real) // 2, len(real) - 100, len(real) - 1):
        cases[f"truncated at {cut}"] = real[:cut]
    return cases


@slow
def test_bad_inputs_raise_format_error(int8_bytes, tmp_path):
    for label, data in _bad_inputs(int8_bytes).items():
        path = tmp_path / "broken.tflite"
        path.write_bytes(data)
        with pytest.raises(TFLiteFormatError) as info:
            read_tflite(path)
        message = str(info.value)
        assert message.startswith(f"{path}: "), label
        assert "\n" not in message and "re-export" in message, label
    with pytest.raises(TFLiteFormatError, match=r"file identifier is b'TFL2', expected b'TFL3'"):
        read_tflite(int8_bytes[:4] + b"TFL2" + int8_bytes[8:])
    with pytest.raises(TFLiteFormatError, match="empty"):
        read_tflite(b"")


@slow
def test_bit_flips_parse_or_raise_format_error(int8_bytes):
    rng = random.Random(99)
    outcomes = {"parsed": 0, "refused": 0}
    for _ in range(300):
        data = bytearray(int8_bytes)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        try:
            assert isinstance(read_tflite(bytes(data)), TFLiteModel)
            outcomes["parsed"] += 1
        except TFLiteFormatError:
            outcomes["refused"] += 1
    assert outcomes["parsed"] and outcomes["refused"]  # both paths were exercised


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"TFL3",
        bytes(64),
        bytes(4) + b"TFL3" + bytes(56),
        b"\x0c\x00\x00\x00TFL3" + bytes(range(256)) * 4,
        random.Random(5).randbytes(4096),
        b"\x08\x00\x00\x00TFL3" + b"\xff" * 120,
    ],
    ids=["empty", "identifier only", "zeros", "zeros+id", "counting", "random", "0xff"],
)
def test_garbage_raises_format_error_without_any_model(data):
    with pytest.raises(TFLiteFormatError, match=r"^<bytes>: .*re-export the model$"):
        read_tflite(data)


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_tflite(tmp_path / "nope.tflite")


@slow
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_model_parses_or_raises_format_error(int8_bytes, data):
    blob = bytearray(int8_bytes)
    edits = data.draw(
        st.lists(
            st.tuples(st.integers(0, len(blob) - 1), st.integers(0, 255)), min_size=1, max_size=16
        )
    )
    for position, value in edits:
        blob[position] = value
    cut = data.draw(st.one_of(st.none(), st.integers(0, len(blob))))
    if cut is not None:
        blob = blob[:cut]
    try:
        model = read_tflite(bytes(blob))
    except TFLiteFormatError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(model, TFLiteModel)
        json.dumps(model.to_dict())
