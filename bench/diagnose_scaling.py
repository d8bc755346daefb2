"""diagnose on EfficientNetB0 (160x160, 32 samples) and on a model twice its size, cold cache.

    .venv/bin/python bench/diagnose_scaling.py [--models b0,b2]

The issue that asked for it (19) wants a slowdown of `diagnose` to show: it times the whole
`tflite-harness diagnose MODEL --flag-set int8 --samples S --json` command on a new, empty
cache (TensorFlow's import, the model's load and export, calibration, the int8 conversion,
the isolated NumericVerify pass and the accumulated LiteRT pass), once per model, and reads
the diagnosis's own timings from its JSON. The models are keras.applications' EfficientNetB0
(5.3 M parameters) and EfficientNetB2 (9.2 M, 1.7x; at the same 160x160 input), with
weights=None (nothing downloaded), saved once under results/bench/diagnose/.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

MODELS = {"b0": "EfficientNetB0", "b2": "EfficientNetB2"}


def model_files(key: str) -> tuple[Path, Path, int]:
    folder = c.WORK / "diagnose"
    name = MODELS[key]
    model, samples = folder / f"{name.lower()}_160.keras", folder / f"{name.lower()}_160.samples.npz"
    if not model.is_file() or not samples.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        code = (
            "import sys, numpy as np, keras\n"
            "keras.utils.set_random_seed(0)\n"
            f"m = keras.applications.{name}(weights=None, input_shape=(160, 160, 3))\n"
            "m.save(sys.argv[1])\n"
            "x = np.random.default_rng(0).uniform(0, 255, (32, 160, 160, 3)).astype('float32')\n"
            "np.savez(sys.argv[2], x=x)\n")
        c.run([sys.executable, "-c", code, str(model), str(samples)], timeout=900)
    return model, samples, model.stat().st_size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="b0,b2")
    args = ap.parse_args()
    rep = c.Report("diagnose_scaling")
    c.header("diagnose_scaling: diagnose --flag-set int8 on EfficientNetB0 and B2, 160x160, 32 samples, cold cache")
    walls = {}
    for key in args.models.split(","):
        model, samples, size = model_files(key)
        with tempfile.TemporaryDirectory() as tmp:
            t = c.timed_run([c.HARNESS, "diagnose", str(model), "--flag-set", "int8", "--samples", str(samples),
                             "--json", "--cache-dir", str(Path(tmp) / "cache")], timeout=3600)
            if t.proc is None or t.proc.returncode != 0:
                rep.add(f"{MODELS[key]}: diagnose (failed)", None, "s", load=t.load,
                        note="" if t.proc is None else t.proc.stderr.strip()[-300:])
                continue
            walls[key] = t.wall_s
            timings = {}
            try:
                timings = json.loads(t.proc.stdout).get("timings", {}) or {}
            except (json.JSONDecodeError, AttributeError):
                pass
            note = ", ".join(f"{k} {v:.1f} s" for k, v in timings.items() if isinstance(v, (int, float)))
            rep.add(f"{MODELS[key]} ({size / 1e6:.1f} MB .keras): diagnose, cold cache, wall", t.wall_s, "s",
                    load=t.load, note=note)
            rep.add(f"{MODELS[key]}: CPU time of the command and its children", t.cpu_s, "s", load=t.load)
    if "b0" in walls and "b2" in walls:
        rep.add("EfficientNetB2 / EfficientNetB0 wall", walls["b2"] / walls["b0"], "x")
    rep.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
