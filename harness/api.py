"""The Python API: what a notebook needs, and what the CLI and the pytest plugin call.

    import harness
    base = harness.run_model("models/digits_cnn.keras", ["fp32", "int8"], runs=20)
    df = harness.rows(base).to_dataframe()          # needs pandas
    new = harness.run_model("models/digits_cnn.keras", ["fp32", "int8"], runs=20)
    print(harness.compare(base, new, max_latency_regression=0.10).summary())

One way to do each thing: `tflite-harness run` builds its campaign with `make_campaign`
and its run with `open_run`; `tflite-harness convert` and the plugin's `convert` call
`convert_model`; the plugin's `run` calls `run_model`; `tflite-harness compare` reads BASE and
NEW with `read_run`, as `compare` does. Nothing heavy is imported until a call runs, so
`import harness` stays cheap (no TensorFlow, no NumPy).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.core.errors import UsageError
from harness.core.native_log import verbose_output

if TYPE_CHECKING:
    from harness.config import Campaign
    from harness.core.result import Result
    from harness.pipeline.artifacts import Artifact, Prepared
    from harness.pipeline.campaign import CampaignRun, Events, RunSummary
    from harness.report.compare import Comparison
    from harness.store import Store

__all__ = ["Conversion", "Rows", "compare", "convert_model", "diagnose", "make_campaign", "open_run", "read_run", "rows",
           "run_campaign", "run_model"]

PathLike = str | os.PathLike
RUN_SETTINGS = ("out", "store", "cache_dir", "workers", "baseline", "executor", "ray_address", "run_id")
PANDAS_HINT = "Rows.to_dataframe() needs pandas, which tflite-harness does not install: pip install pandas"


# ---------------------------------------------------------------------------- campaigns
def make_campaign(source: PathLike | Campaign | None = None, *, models: Sequence[PathLike] = (),
                  samples: PathLike | None = None, flag_sets: Sequence[str] | None = None,
                  devices: Sequence[str] | None = None, **settings: Any) -> Campaign:
    """A validated `Campaign`: SOURCE (a TOML path or a Campaign; the bundled campaign when
    neither SOURCE nor MODELS is given), its models replaced by MODELS, its flag sets,
    devices and settings (`runs`, `threads`, `min_seconds`, ...) overridden where given.

    Bad values raise `UsageError` with a one-line message naming the value and the fix.
    """
    from harness.config import (
        BUNDLED_CAMPAIGN,
        Campaign,
        Settings,
        load_campaign,
        model_from_path,
        unique_names,
    )
    from harness.core.flag_sets import DEFAULT_FLAG_SETS, resolve_flag_sets
    from harness.devices.registry import validate_device_name

    if source is None and not models:
        source = BUNDLED_CAMPAIGN
    if isinstance(source, Campaign):
        c = source
    elif source is not None:
        c = load_campaign(source)
    else:
        c = Campaign(name="adhoc", models=(), flag_sets=tuple(resolve_flag_sets(list(DEFAULT_FLAG_SETS), {})),
                     devices=("local",), settings=Settings())
    if samples is not None and not models:
        raise UsageError("--samples applies to --model models; give --model PATH too "
                         "(campaign models set samples in TOML)")
    if models:
        c = replace(c, models=tuple(model_from_path(str(m), samples=samples, where=f"--model {m}") for m in models))
    if not c.models:
        raise UsageError("the campaign has no models; add [[models]] tables or pass --model PATH")
    if flag_sets:
        c = replace(c, flag_sets=tuple(resolve_flag_sets(unique_names(list(flag_sets), "--flag-sets"),
                                                         c.user_flag_sets)))
    if devices:
        c = replace(c, devices=tuple(unique_names(list(devices), "--devices")))
    for d in c.devices:
        validate_device_name(d)
    return replace(c, settings=settings_with(c.settings, settings))


def settings_with(base, overrides: dict[str, Any]):
    """BASE (a `Settings`) with OVERRIDES, checked as a campaign's [settings] table is;
    `threads` may be one number or several; `timeout` is `timeout_s`."""
    from harness.config import parse_settings

    raw = {("timeout_s" if k == "timeout" else k): v for k, v in overrides.items() if v is not None}
    for k in ("devices", "flag_sets"):
        if k in raw:
            raise UsageError(f"{k} is its own argument, not a setting; pass {k}=[...]")
    for key in ("threads", "runtimes", "accelerators"):
        if isinstance(raw.get(key), tuple):
            raw[key] = list(raw[key])
    checked, _, _ = parse_settings(raw, "settings")
    return replace(base, **{k: getattr(checked, k) for k in raw})


def check_writable(path: Path, label: str) -> None:
    """A one-line error now, rather than a traceback after the conversions, when PATH cannot be written."""
    import tempfile

    if label == "--store":  # a file; the others are folders
        if path.is_dir():
            raise UsageError(f"--store {path} is a folder; give the path of a .sqlite file")
    elif path.exists() and not path.is_dir():
        raise UsageError(f"{label} {path} is a file, not a folder; choose a folder with {label}")
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.is_file() and probe != path:
        raise UsageError(f"{label} {path}: {probe} is a file, not a folder; choose another with {label}")
    folder = probe if probe.is_dir() else probe.parent
    try:  # os.access says yes to root everywhere, and /proc refuses anyway: try for real
        with tempfile.TemporaryFile(dir=folder):
            pass
        ok = os.access(folder, os.W_OK)
    except OSError:
        ok = False
    if not ok:
        raise UsageError(f"{label} {path} is not writable; choose another with {label}")


def open_run(campaign: Campaign, *, out: PathLike | None = None, store: PathLike | None = None,
             cache_dir: PathLike | None = None, workers: int | None = None, baseline: str = "fp32",
             executor: str = "local", ray_address: str | None = None, run_id: str | None = None,
             events: Events | None = None, debug: bool = False) -> CampaignRun:
    """A `CampaignRun` ready to `execute()`: its id, folder and store are known before it starts.

    Defaults: folder results/<run-id>/, store results/harness.sqlite, cache results/cache,
    one converter process per core, executor `local` (or `ray`, see docs/lab.md).
    """
    from harness.executors import make_run
    from harness.pipeline.campaign import RunOptions

    if ray_address and executor != "ray":
        raise UsageError("--ray-address needs --executor ray")
    paths = {k: Path(v) if v is not None else None for k, v in (("out", out), ("store", store), ("cache", cache_dir))}
    options = RunOptions(out_dir=paths["out"], store_path=paths["store"], cache_dir=paths["cache"], debug=debug,
                         run_id=run_id, baseline=baseline, executor=executor, ray_address=ray_address)
    if workers:
        options.workers = workers
    for path, label in ((paths["out"], "--out"), (paths["store"], "--store"), (paths["cache"], "--cache-dir"),
                        (None if out else options.out_root, "--out")):
        if path is not None:
            check_writable(path, label)
    return make_run(campaign, options, events)


def run_campaign(campaign: PathLike | Campaign | None = None, *, flag_sets: Sequence[str] | None = None,
                 devices: Sequence[str] | None = None, events: Events | None = None, verbose: bool = False,
                 **options: Any) -> RunSummary:
    """Run a campaign (a TOML path or a `Campaign`; the bundled one by default) to the end.

    FLAG_SETS, DEVICES and settings keywords (`runs=5`, `threads=(1, 2)`, `min_seconds=0`,
    ...) override the campaign's; run keywords (`out`, `store`, `cache_dir`, `workers`,
    `baseline`, `executor`, `ray_address`) are `open_run`'s. Returns the `RunSummary`:
    `run_id`, `out_dir`, `store_path`, `results` (every row, failures included).
    The runtime's native log lines go to the run's logs/, not to the notebook; `verbose=True` shows them.
    """
    run_kw = {k: options.pop(k) for k in list(options) if k in RUN_SETTINGS}
    c = make_campaign(campaign, flag_sets=flag_sets, devices=devices, **options)
    with verbose_output(verbose or None):
        return open_run(c, events=events, **run_kw).execute()


def run_model(model: PathLike, flag_sets: Sequence[str] = ("fp32",), devices: Sequence[str] = ("local",), *,
              samples: PathLike | None = None, events: Events | None = None, verbose: bool = False,
              **options: Any) -> RunSummary:
    """Convert MODEL (.keras, .h5, SavedModel folder, file.py:function, .tflite) under each
    flag set and measure it on each device; keywords (`verbose` too) as `run_campaign`'s.
    Returns the `RunSummary`."""
    from harness.config import Campaign, Settings
    from harness.core.flag_sets import resolve_flag_sets

    base = Campaign(name="adhoc", models=(), flag_sets=tuple(resolve_flag_sets(list(flag_sets), {})),
                    devices=tuple(devices), settings=Settings())
    run_kw = {k: options.pop(k) for k in list(options) if k in RUN_SETTINGS}
    c = make_campaign(base, models=[model], samples=samples, **options)
    with verbose_output(verbose or None):
        return open_run(c, events=events, **run_kw).execute()


# ---------------------------------------------------------------------------- conversion only
@dataclass
class Conversion:
    """What `convert_model` made: one `Artifact` per flag set (ok or with its failure), and the
    prepared models (evaluation inputs, reference outputs) by model name."""

    artifacts: list[Artifact]
    prepared: dict[str, Prepared]
    conversions_performed: int
    conversions_cached: int


def convert_model(model: PathLike, flag_sets: Sequence[str] = ("fp32",), *, samples: PathLike | None = None,
                  out: PathLike = "results/convert", cache_dir: PathLike | None = None, workers: int | None = None,
                  **settings: Any) -> Conversion:
    """Convert MODEL under each flag set, cached by content like a run; no device is measured.
    Logs go to OUT/logs. A flag set that fails is an artifact with `ok=False` and a reason."""
    from harness.config import Campaign, Settings, model_from_path
    from harness.core.flag_sets import resolve_flag_sets

    spec = model_from_path(os.fspath(model), samples=samples, where=os.fspath(model))
    base = Campaign(name="convert", models=(spec,), flag_sets=tuple(resolve_flag_sets(list(flag_sets), {})),
                    devices=(), settings=Settings())
    c = make_campaign(base, **settings)
    run = open_run(c, out=out, cache_dir=cache_dir, workers=workers)
    prepared: dict = {}
    run.builder.start_workers()
    try:
        artifacts = run.builder.build(prepared, lambda a: None)
    finally:
        run.builder.close()
    return Conversion(artifacts, prepared, run.builder.conversions_performed, run.builder.conversions_cached)


# ---------------------------------------------------------------------------- reading runs
class Rows(list):
    """A run's result rows (a list of `Result`), with `to_dataframe()` when pandas is installed."""

    def to_dataframe(self, samples: bool = False):
        """One DataFrame row per result; nested figures become dotted columns (`latency_us.p50`,
        `drift.max_abs`, `device_info.model`). Raw latency samples only with `samples=True`."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(PANDAS_HINT) from None
        return pd.DataFrame([flat_row(r, samples) for r in self])


def flat_row(r: Result, samples: bool = False) -> dict[str, Any]:
    """A result as one flat dict: dict fields spread into `field.key` columns."""
    out: dict[str, Any] = {}

    def put(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                put(f"{prefix}.{k}", v)
        else:
            out[prefix] = value

    for k, v in r.to_dict().items():
        if k == "samples_us" and not samples:
            continue
        put(k, v)
    return out


def open_store(path: PathLike | None) -> Store:
    """The results store at PATH (default results/harness.sqlite), which must exist."""
    from harness.store import Store, default_store_path

    path = Path(path) if path is not None else default_store_path()
    if not path.is_file():
        raise UsageError(f"no results store at {path}; run `tflite-harness run` first or pass --store PATH")
    return Store(path)


def read_run(spec: PathLike | RunSummary, store: PathLike | None = None, *, which: str = "run",
             for_compare: bool = False) -> tuple[str, list]:
    """(name, rows) of a run: a `RunSummary`, a run id (a unique prefix, or 'latest') in
    STORE, a results.json export or a run folder holding one. WHICH names the side in errors.

    `for_compare` reads only what compare needs (report columns and raw samples as arrays),
    which keeps a 100k-row comparison fast; otherwise rows are full `Result`s.
    """
    summary_id = getattr(spec, "run_id", None)
    if summary_id is not None:
        store = store or getattr(spec, "store_path", None)
        spec = summary_id
    else:
        from harness.core.result import Result

        text = os.fspath(spec)
        path = Path(text)
        if path.is_dir():
            path = path / "results.json"
            if not path.is_file():
                raise UsageError(f"{which} {text}: folder has no results.json; give a run id or a results.json file")
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(data, dict):
                    data = data.get("results")
                if not isinstance(data, list):
                    raise ValueError("expected a list of result objects")
                return text, [Result.from_dict(d) for d in data]
            except (ValueError, TypeError, UnicodeDecodeError) as exc:
                raise UsageError(f"{which} {text}: not a results.json export ({exc}); "
                                 "give a run id or the results.json a run wrote") from None
        if text.endswith(".json"):
            raise UsageError(f"{which} {text}: no such file; give a run id or an existing results.json")
        spec = text
    s = open_store(store)
    try:
        run = s.run(spec)
        if not for_compare:
            return run.id, s.results(run.id)
        # Only what compare reads: the report columns (no JSON decoding per row) and the raw
        # samples as float64 arrays straight from their packed column (no Python float each).
        found = s.report_rows(run.id)
        samples = s.sample_arrays(run.id)
        s.fill_identity(run.id, found)  # artifact path, settings, inputs: compare's identity and confirmation
    finally:
        s.close()
    for r in found:
        r.samples_us = samples.get(r.key, [])
    return run.id, found


def rows(run: PathLike | RunSummary = "latest", store: PathLike | None = None) -> Rows:
    """A run's rows: RUN is a `RunSummary`, a run id (a unique prefix, or 'latest') in STORE
    (default results/harness.sqlite), a results.json export, or a run folder."""
    return Rows(read_run(run, store)[1])


# ---------------------------------------------------------------------------- comparing runs
def compare(base: PathLike | RunSummary | list, new: PathLike | RunSummary | list, *,
            store: PathLike | None = None, ignore: Iterable[str] = (), confirm: bool = True, rounds: int = 6,
            cache_dirs: Iterable[PathLike] = ("results/cache",), **thresholds: Any) -> Comparison:
    """Compare run NEW against run BASE (either as `rows` takes it, or a list of rows): the
    regression gate, as `tflite-harness compare` runs it.

    THRESHOLDS are `harness.report.compare.Thresholds` fields (`max_latency_regression=0.05`,
    `max_size_increase=0.01`, `max_drift_increase`, `max_accuracy_drop`, `alpha`, `noise_factor`,
    `unconfirmed="warn"|"fail"`); IGNORE drops settings from the row match (e.g.
    `ignore=("xnnpack",)`). A latency change of a changed artifact is confirmed by re-measuring
    both artifacts now, interleaved, `rounds` times (`confirm=False`: stored results only, the
    change is `unconfirmed`); artifacts are found at the paths the rows name or in CACHE_DIRS.
    Returns the `Comparison`: `.failed` (the CLI's exit code 1), `.rows`, `.regressed`,
    `.summary()`.
    """
    from harness.pipeline.confirm import gate
    from harness.report.compare import Thresholds
    from harness.store import gc_paused

    try:
        limits = Thresholds(**thresholds)
    except TypeError:
        from dataclasses import fields

        known = ", ".join(f.name for f in fields(Thresholds))
        raise UsageError(f"compare: unknown threshold in {sorted(thresholds)}; known: {known}") from None
    with gc_paused():
        base_rows = base if isinstance(base, list) else read_run(base, store, which="BASE", for_compare=True)[1]
        new_rows = new if isinstance(new, list) else read_run(new, store, which="NEW", for_compare=True)[1]
        try:
            return gate(base_rows, new_rows, limits, ignore=tuple(ignore), confirm=confirm, rounds=rounds,
                        cache_dirs=tuple(Path(d) for d in cache_dirs))
        except ValueError as exc:
            raise UsageError(str(exc)) from None


def diagnose(model: PathLike, flag_set: str = "int8", *, samples: PathLike | None = None,
             budget: str | None = None, float_layers: Sequence[str] | None = None,
             cache_dir: PathLike | None = None, write: PathLike | None = None, verbose: bool = False,
             **options: Any):
    """Where quantization hurts MODEL under FLAG_SET, layer by layer (worst first), and with
    BUDGET (e.g. "top1>=0.99,cosine>=0.999") the cheapest set of layers kept float that meets
    it, measured on the local runtime; WRITE receives the chosen `.tflite`.

    Returns a `Diagnosis`: `.layers` (tensor, op, accumulated error, and the figure that ranks
    them: `.isolated` on the TF backend, `.added_cosine_loss` on the quantizer's; `.metric` says
    which), `.search` (`steps`, `chosen`, `met`) and `.to_dict()` (what `tflite-harness diagnose
    --json` prints).
    `tflite-harness diagnose` and the pytest fixture's `diagnose` make the same call. LiteRT's
    log lines ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.") go to the session's
    logs/runtime.log, not to the notebook; `verbose=True` shows them.
    """
    from harness.pipeline.session import diagnose as run_diagnosis

    with verbose_output(verbose or None):
        return run_diagnosis(model, flag_set, samples=samples, budget=budget,
                             float_layers=list(float_layers) if float_layers else None,
                             cache_dir=cache_dir, write=write, **options)
