"""`tflite-harness check FILE.tflite`: what a converted model holds and where it will run.

Nothing here needs TensorFlow: ops, tensors, quantization, float ops left in a quantized
model, Flex/custom ops, the LiteRT analyzer's GPU verdict, size by part.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

GPU_NOT_ASKED = {"available": False, "compatible": None, "messages": ["analyzer not asked"]}


def gpu_compatibility(path: str | Path) -> dict[str, Any]:
    """The LiteRT model analyzer's GPU delegate verdict, run in a child process (`native.py`).

    Call it only on a file that `read_tflite` accepted; a crash in the analyzer raises
    NativeCrash (a one-line usage error), an analyzer that is missing or raises is reported.
    """
    from harness.tflite.native import run_analyzer

    ran, text = run_analyzer(path)
    if not ran:
        return {"available": False, "compatible": None, "messages": [text]}
    lines = [ln.strip() for ln in text.splitlines()]
    # The verdict line(s), plus the per-op "ERROR: ..." lines the analyzer adds under a warning.
    messages = [ln for ln in lines if ("GPU" in ln and "compatib" in ln.lower()) or ln.startswith("ERROR")]
    compatible = None
    if "looks compatible with GPU delegate" in text:
        compatible = True
    elif "GPU COMPATIBILITY WARNING" in text or "not compatible" in text.lower():
        compatible = False
    return {"available": True, "compatible": compatible, "messages": messages[:20]}


def size_parts(data: bytes, model: Any) -> dict[str, int]:
    """Bytes by part: constant (weight) buffers, metadata buffers, appended zip, graph rest."""
    from harness.tflite.metadata import associated_files

    metadata = sum(len(v) for v in model.metadata.values())
    zip_tail = 0
    if associated_files(data):
        start = data.find(b"PK\x03\x04", 8)
        zip_tail = len(data) - start if start > 0 else 0
    weights = model.weights_bytes
    return {"total": len(data), "weights": weights, "metadata": metadata, "associated_files": zip_tail,
            "graph": max(0, len(data) - weights - metadata - zip_tail)}


def check_tflite(path: str | Path, analyzer: bool = True) -> dict[str, Any]:
    """What PATH holds; `analyzer=False` leaves out the LiteRT analyzer's GPU verdict (its child process)."""
    from harness.tflite.file import read_tflite
    from harness.tflite.metadata import read_metadata
    from harness.tflite.verify import mapped

    m = read_tflite(path)  # by path: a fault names the file; verified before the analyzer sees it
    with mapped(path) as data:
        size, metadata = size_parts(data, m), read_metadata(data)

    def tensor(t: Any) -> dict:
        q = t.quantization
        return {"name": t.name, "shape": list(t.shape), "dtype": t.dtype,
                "quantization": None if q is None else {"scales": list(q.scales[:8]), "zero_points": list(q.zero_points[:8]),
                                                         "per_channel": len(q.scales) > 1}}

    float_ops = m.float_ops_in_quantized
    report: dict[str, Any] = {
        "kind": "tflite", "path": str(path), "size": size,
        "ops": [{"name": o.name, "version": o.version, "count": o.count, "kind": o.kind}
                for o in sorted(m.operators, key=lambda o: (o.kind, o.name))],
        "inputs": [tensor(t) for t in m.inputs], "outputs": [tensor(t) for t in m.outputs],
        "signatures": [s.key for s in m.signatures], "subgraphs": m.num_subgraphs,
        "quantized": m.is_quantized, "float_ops_in_quantized": [{"index": i, "op": n} for i, n in float_ops],
        "flex_ops": m.flex_ops, "custom_ops": m.custom_ops, "min_runtime_version": m.min_runtime_version,
        "gpu": gpu_compatibility(path) if analyzer else GPU_NOT_ASKED, "metadata": metadata, "findings": [],
    }
    f = report["findings"]
    if float_ops:
        names = sorted({n for _, n in float_ops})
        f.append(f"{len(float_ops)} op(s) stay float inside the quantized model ({', '.join(names)}): "
                 "they run wrapped in DEQUANTIZE/QUANTIZE; an int8 flag set with TFLITE_BUILTINS_INT8 only "
                 "would refuse them")
    if m.flex_ops:
        f.append(f"Flex ops {', '.join(m.flex_ops)} need the Flex delegate (tensorflow-lite-select-tf-ops); "
                 "plain LiteRT runtimes cannot run this model")
    if m.custom_ops:
        f.append(f"custom ops {', '.join(m.custom_ops)} need a registered kernel in the app")
    if report["gpu"]["compatible"] is False:
        f.append("the analyzer says some ops will not run on the GPU delegate (they fall back to CPU)")
    return report
