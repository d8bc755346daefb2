"""Campaign TOML -> typed, validated config. Every bad value gets a one-line error.

A campaign names models, flag sets, devices and settings. Paths inside it are relative
to the campaign file. Nothing here imports TensorFlow: the CLI validates a campaign in
well under a second before any worker starts. The [settings] table is read by
`harness/core/settings.py` (re-exported here), the [flag_sets] tables by `core/flag_sets.py`.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from harness.core.errors import UsageError
from harness.core.flag_sets import (
    BUILTIN_FLAG_SETS,
    FlagSet,
    parse_flag_set,
    resolve_bases,
    resolve_flag_sets,
)
from harness.core.settings import Settings, parse_settings, parse_threads, unique_names  # noqa: F401 - re-exported

MODEL_KINDS = ("keras", "saved_model", "concrete_function", "jax", "tflite")
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_CAMPAIGN = PACKAGE_ROOT / "models" / "campaign.toml"


@dataclass(frozen=True)
class ModelSpec:
    """An original model and how to feed it."""

    name: str
    kind: str
    path: Path  # file or directory; for concrete_function/jax the Python file
    entry: str | None = None  # function name inside `path` for concrete_function/jax
    samples: Path | None = None  # evaluation inputs (+ optional labels), .npz or .npy
    representative: Path | None = None  # calibration inputs, .npz or .npy
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    signature: str = "serving_default"
    # a .tflite held to the model it was made from (`original = PATH`): reference outputs
    # come from that model, fed with this entry's samples, signature and input_shapes
    original: Path | None = None
    original_kind: str | None = None
    original_entry: str | None = None
    # a Keras file whose Lambda layers (Python code) may run: safe_mode off for this model only
    trusted: bool = False

    @property
    def source(self) -> str:
        return f"{self.path}:{self.entry}" if self.entry else str(self.path)


def reference_model(m: ModelSpec) -> ModelSpec:
    """The model whose outputs are M's reference: M itself, or the original its .tflite was made from."""
    if m.original is None or m.original_kind is None:
        return m
    return replace(m, kind=m.original_kind, path=m.original, entry=m.original_entry,
                   original=None, original_kind=None, original_entry=None)


@dataclass(frozen=True)
class Campaign:
    name: str
    models: tuple[ModelSpec, ...]
    flag_sets: tuple[FlagSet, ...]
    devices: tuple[str, ...]
    settings: Settings
    path: Path | None = None
    user_flag_sets: dict[str, FlagSet] = field(default_factory=dict)


def infer_kind(path: Path, entry: str | None) -> str:
    if entry is not None:
        return "concrete_function"
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        return "tflite"
    if suffix in (".keras", ".h5", ".hdf5"):
        return "keras"
    if path.is_dir():
        return "saved_model"
    raise UsageError(
        f"{path}: cannot tell the model kind from the name; use .keras/.h5, a SavedModel "
        "directory, a .tflite file or path/to/file.py:function, or set kind = ..."
    )


def split_entry(text: str) -> tuple[str, str | None]:
    """'dir/file.py:fn' -> ('dir/file.py', 'fn'); other paths have no entry."""
    if ".py:" in text:
        file, _, fn = text.rpartition(":")
        return file, fn
    return text, None


def _sidecar(path: Path, suffix: str) -> Path | None:
    candidate = path.with_name(path.name.split(".")[0] + suffix)
    return candidate if candidate.is_file() else None


def model_from_path(
    text: str,
    *,
    base: Path | None = None,
    name: str | None = None,
    kind: str | None = None,
    samples: str | Path | None = None,
    representative: str | Path | None = None,
    input_shapes: dict[str, Any] | None = None,
    signature: str = "serving_default",
    where: str = "--model",
    original: str | None = None,
    original_kind: str | None = None,
) -> ModelSpec:
    """Build and validate a ModelSpec; sidecar NAME.samples.npz / NAME.calib.npz are picked up."""
    file, entry = split_entry(text)
    path = Path(file)
    if base is not None and not path.is_absolute():
        path = base / path
    if not path.exists():
        raise UsageError(f"{where}: {path} does not exist; check the path (relative to the campaign file)")
    if kind is None:
        kind = infer_kind(path, entry)
    if kind not in MODEL_KINDS:
        raise UsageError(f"{where}: kind {kind!r} is unknown; choose from {', '.join(MODEL_KINDS)}")
    if kind in ("concrete_function", "jax") and (entry is None or path.suffix != ".py"):
        raise UsageError(f"{where}: a {kind} model is given as path/to/file.py:function")
    if kind == "saved_model" and not (path / "saved_model.pb").is_file():
        raise UsageError(f"{where}: {path} has no saved_model.pb; give a SavedModel directory")
    if kind in ("keras", "tflite") and path.is_file() and path.stat().st_size == 0:
        raise UsageError(f"{where}: {path} is empty; re-export the model")

    def _resolve(value: str | Path | None, label: str, sidecar: str) -> Path | None:
        if value is None:
            return _sidecar(path, sidecar) if path.is_file() else None
        p = Path(value)
        if base is not None and not p.is_absolute():
            p = base / p
        if not p.is_file():
            raise UsageError(f"{where}: {label} file {p} does not exist")
        if p.suffix not in (".npz", ".npy"):
            raise UsageError(f"{where}: {label} file {p} must be .npz or .npy")
        return p

    shapes: dict[str, tuple[int, ...]] = {}
    for key, shape in (input_shapes or {}).items():
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape
        ):
            raise UsageError(f"{where}: input_shapes.{key} must be a list of positive integers, e.g. [1, 8, 8, 1]")
        shapes[key] = tuple(shape)
    orig = None
    if original is not None:
        if kind != "tflite":
            raise UsageError(f"{where}: original applies to a .tflite model (this one is {kind}); drop it")
        orig = model_from_path(original, base=base, kind=original_kind, where=f"{where}: original")
        if orig.kind == "tflite":
            raise UsageError(f"{where}: original {orig.path} is a .tflite; give the model it was converted from "
                             "(a SavedModel, .keras, file.py:function)")
    elif original_kind is not None:
        raise UsageError(f"{where}: original_kind needs original = PATH")
    return ModelSpec(
        name=name or path.name.split(".")[0],
        kind=kind,
        path=path.resolve(),
        entry=entry,
        # a .tflite held to its original takes the original's sidecar data unless it has its own
        samples=_resolve(samples, "samples", ".samples.npz") or (orig.samples if orig else None),
        representative=_resolve(representative, "representative", ".calib.npz") or (orig.representative if orig else None),
        input_shapes=shapes,
        signature=signature,
        original=orig.path if orig else None,
        original_kind=orig.kind if orig else None,
        original_entry=orig.entry if orig else None,
    )


def load_campaign(path: str | Path) -> Campaign:
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: campaign file not found; give a .toml campaign or use --model PATH")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML ({exc}); fix the syntax") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not a UTF-8 text file; give a TOML campaign") from None
    return parse_campaign(raw, path)


def parse_campaign(raw: dict[str, Any], path: Path) -> Campaign:
    base = path.parent
    known = {"name", "settings", "models", "flag_sets", "devices"}
    for key in raw:
        if key not in known:
            raise UsageError(f"{path}: unknown top-level key {key!r}; known: {', '.join(sorted(known))}")
    settings_raw = raw.get("settings", {})
    if not isinstance(settings_raw, dict):
        raise UsageError(f"{path}: [settings] must be a table")
    settings, devices, flag_set_names = parse_settings(settings_raw, f"{path}: settings")
    user_raw = raw.get("flag_sets", {})
    if not isinstance(user_raw, dict):
        raise UsageError(f"{path}: [flag_sets] must be a table of tables, e.g. [flag_sets.mine]")
    user = resolve_bases({
        name: parse_flag_set(name, value, f"{path}: flag_sets.{name}", base)
        for name, value in user_raw.items()
    }, str(path))
    models_raw = raw.get("models", [])
    if not isinstance(models_raw, list):
        raise UsageError(f"{path}: models must be an array of tables ([[models]])")
    models = []
    for i, m in enumerate(models_raw):
        where = f"{path}: models[{i}]"
        if not isinstance(m, dict):
            raise UsageError(f"{where} must be a table")
        allowed = {"name", "path", "kind", "samples", "representative", "input_shapes", "signature", "original",
                   "original_kind", "trusted"}
        for key in m:
            if key not in allowed:
                raise UsageError(f"{where}: unknown key {key!r}; known: {', '.join(sorted(allowed))}")
        if "path" not in m or not isinstance(m["path"], str):
            raise UsageError(f"{where}: path is required (a model file, SavedModel directory or file.py:function)")
        shapes = m.get("input_shapes", {})
        if not isinstance(shapes, dict):
            raise UsageError(f"{where}: input_shapes must be a table like {{ x = [1, 8, 8, 1] }}")
        if not isinstance(m.get("trusted", False), bool):
            raise UsageError(f"{where}: trusted must be true or false")
        models.append(replace(
            model_from_path(
                m["path"],
                base=base,
                name=_text(m, "name", where, example='"mnist"'),
                kind=_text(m, "kind", where, example='"keras"'),
                samples=_text(m, "samples", where, example='"data/samples.npz"'),
                representative=_text(m, "representative", where, example='"data/calib.npz"'),
                input_shapes=shapes,
                signature=_text(m, "signature", where, example='"serving_default"') or "serving_default",
                where=where,
                original=_text(m, "original", where),
                original_kind=_text(m, "original_kind", where),
            ), trusted=m.get("trusted", False)))
    names = [m.name for m in models]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise UsageError(f"{path}: model names must be unique; rename {', '.join(sorted(dupes))}")
    return Campaign(
        name=str(raw.get("name", path.stem)),
        models=tuple(models),
        flag_sets=tuple(resolve_flag_sets(flag_set_names, user)),
        devices=tuple(devices),
        settings=settings,
        path=path,
        user_flag_sets=user,
    )


def _text(m: dict, key: str, where: str, example: str = '"model/"') -> str | None:
    """A campaign string field, or a one-line error naming it (a TOML list or number is not a path)."""
    value = m.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise UsageError(f"{where}: {key} must be a non-empty string, e.g. {key} = {example}")
    return value


def model_payload(m: ModelSpec) -> dict:
    """A ModelSpec as plain JSON for the worker processes."""
    out = {
        "name": m.name, "kind": m.kind, "path": str(m.path), "entry": m.entry, "signature": m.signature,
        "samples": str(m.samples) if m.samples else None,
        "representative": str(m.representative) if m.representative else None,
        "input_shapes": {k: list(v) for k, v in m.input_shapes.items()},
    }
    if m.original is not None:
        out["original"] = {"path": str(m.original), "kind": m.original_kind, "entry": m.original_entry}
    if m.trusted:  # only when set: other models' payloads (and cache keys) stay as they were
        out["trusted"] = True
    return out


def campaign_from_config(config: dict) -> Campaign:
    """Rebuild a stored run's campaign (for --resume) from what `campaign_config` wrote."""
    models = tuple(
        ModelSpec(name=m["name"], kind=m["kind"], path=Path(m["path"]), entry=m.get("entry"),
                  samples=Path(m["samples"]) if m.get("samples") else None,
                  representative=Path(m["representative"]) if m.get("representative") else None,
                  input_shapes={k: tuple(v) for k, v in m.get("input_shapes", {}).items()},
                  signature=m.get("signature", "serving_default"),
                  original=Path(m["original"]["path"]) if m.get("original") else None,
                  original_kind=(m.get("original") or {}).get("kind"),
                  original_entry=(m.get("original") or {}).get("entry"), trusted=bool(m.get("trusted")))
        for m in config["models"]
    )
    flag_sets = tuple(FlagSet(n, o, n in BUILTIN_FLAG_SETS) for n, o in config["flag_sets"].items())
    known = {f.name for f in fields(Settings)}
    raw = {k: v for k, v in config["settings"].items() if k in known}
    raw.update({k: tuple(raw[k]) for k in ("runtimes", "accelerators") if k in raw}, threads=tuple(raw.get("threads", (1,))))
    return Campaign(name=config["name"], models=models, flag_sets=flag_sets, devices=tuple(config["devices"]),
                    settings=Settings(**raw))


def campaign_config(c: Campaign) -> dict:
    """A campaign as plain JSON, stored with each run so `--resume` can rebuild it."""
    return {
        "name": c.name,
        "models": [model_payload(m) for m in c.models],
        "flag_sets": {fs.name: fs.options for fs in c.flag_sets},
        "devices": list(c.devices),
        "settings": asdict(c.settings),
    }
