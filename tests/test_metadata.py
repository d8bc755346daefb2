"""TFLite metadata written by flag sets: validation, round trip, outputs unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from harness.core.errors import UsageError
from harness.tflite.file import read_tflite
from harness.tflite.metadata import (
    METADATA_NAME,
    associated_files,
    decode_metadata,
    parse_metadata,
    read_metadata,
    write_metadata,
)


def test_parse_metadata_validates(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n")
    ok = parse_metadata({"name": "m", "labels": "labels.txt", "mean": [127.5], "std": [127.5]}, "fs", tmp_path)
    assert ok["labels"] == str(labels.resolve()) and ok["mean"] == [127.5]
    for bad, needle in [
        ({"nam": "x"}, "unknown key"),
        ({"name": 3}, "must be a string"),
        ({"labels": "missing.txt"}, "does not exist"),
        ({"mean": [1.0]}, "both mean and std"),
        ({"mean": [1.0], "std": [0]}, "must not contain 0"),
        ({"mean": ["a"], "std": [1]}, "list of numbers"),
        ("x", "must be a table"),
    ]:
        with pytest.raises(UsageError, match=needle):
            parse_metadata(bad, "fs", tmp_path)


@pytest.mark.slow
def test_metadata_round_trip_and_identical_outputs(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from tests.tflite_helpers import tiny_classifier_tflite

    plain = tiny_classifier_tflite(tmp_path / "plain.tflite").read_bytes()
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"digit {i}" for i in range(10)) + "\n")
    meta = {"name": "tiny", "description": "a tiny classifier", "version": "1.2", "author": "tests",
            "license": "Apache-2.0", "labels": str(labels), "mean": [0.5], "std": [0.25]}
    with_meta = write_metadata(plain, meta)

    model = read_tflite(with_meta)
    assert METADATA_NAME in model.metadata
    assert model.metadata[METADATA_NAME][4:8] == b"M001"
    assert "min_runtime_version" in model.metadata  # the converter's entries are kept
    assert model.weights_bytes == read_tflite(plain).weights_bytes
    assert associated_files(with_meta) == {"labels.txt": labels.read_bytes()}

    got = read_metadata(with_meta)
    assert got["name"] == "tiny" and got["version"] == "1.2" and got["author"] == "tests"
    assert got["license"] == "Apache-2.0" and got["min_parser_version"] == "1.0.0"
    assert got["subgraphs"][0]["inputs"][0]["normalization"] == {"mean": [0.5], "std": [0.25]}
    out = got["subgraphs"][0]["outputs"][0]
    assert out["name"] in ("probs", "Identity") and out["associated_files"][0]["type"] == "TENSOR_AXIS_LABELS"
    assert got["labels"][3] == "digit 3"
    assert decode_metadata(model.metadata[METADATA_NAME])["name"] == "tiny"

    # Writing again replaces the entry rather than adding a second one.
    again = read_tflite(write_metadata(with_meta, {**meta, "version": "2"}))
    assert list(again.metadata).count(METADATA_NAME) == 1

    def run(blob: bytes) -> np.ndarray:
        it = Interpreter(model_content=blob)
        it.allocate_tensors()
        d, o = it.get_input_details()[0], it.get_output_details()[0]
        rng = np.random.default_rng(1)
        outs = []
        for _ in range(8):
            it.set_tensor(d["index"], rng.normal(size=d["shape"]).astype(np.float32))
            it.invoke()
            outs.append(it.get_tensor(o["index"]).copy())
        return np.stack(outs)

    assert np.array_equal(run(plain), run(with_meta))  # bit-identical
    assert read_metadata(plain) is None
