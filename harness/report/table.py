"""The comparison table: rows model x flag set (x device x threads), relative to a baseline.

One function builds the rows as data (`comparison_rows`); terminal, Markdown and CSV only
format them, so every figure in every format is the same stored number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.result import Result

# (key, header, description) — the README's column list is generated from the same text.
COLUMNS: list[tuple[str, str, str]] = [
    ("model", "model", "model name from the campaign"),
    ("flag_set", "flag set", "converter flag set (as_given: a .tflite measured without conversion)"),
    ("device", "device", "where it ran (local, adb:SERIAL, ...)"),
    ("threads", "thr", "interpreter threads"),
    ("status", "status", "ok, unhealthy, conversion_failed, runtime_failed, unsupported, device_lost, timeout"),
    ("size_kb", "size KB", "artifact size in KiB"),
    ("size_ratio", "size x", "artifact size / baseline artifact size (same model)"),
    ("p50_ms", "p50 ms", "median latency of the timed runs, ms"),
    ("p90_ms", "p90 ms", "90th percentile latency, ms"),
    ("speedup", "speed-up", "baseline p50 / this p50 (same model, device, threads, runtime); >1 is faster"),
    ("init_ms", "init ms", "interpreter creation + allocate_tensors, ms"),
    ("peak_mb", "mem MB", "peak RSS of the measuring process above its baseline before the model was loaded, MiB"),
    ("max_abs", "max abs", "largest absolute difference from the original model's outputs"),
    ("cosine", "cosine", "mean cosine similarity of outputs vs the original (1 = same direction)"),
    ("snr_db", "SNR dB", "signal-to-noise ratio of outputs vs the original, dB (inf = identical)"),
    ("top1", "top-1", "share of samples whose unique top class matches the original's (ties count as misses)"),
    ("accuracy", "acc", "task accuracy against the model's labels (original's accuracy in brackets)"),
    ("valid", "valid", "valid, or why the latency should not be trusted (few runs, wide spread, long tail, throttling)"),
    ("rep", "rep", "representative data: samples (the model's own), random (seeded, in [0,1)), none"),
    ("reason", "reason", "why the row is not ok, or a note"),
]


@dataclass
class Row:
    values: dict[str, object]  # raw numbers
    text: dict[str, str]  # formatted


def _fmt(value: object, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if value != 0 and abs(value) < 10 ** -digits:
            return f"{value:.1e}"
        return f"{value:.{digits}f}"
    return str(value)


def _sig(value: float | None, digits: int = 3) -> str:
    """Three significant digits: latencies span microseconds to seconds."""
    if value is None:
        return "-"
    if value == 0:
        return "0"
    decimals = max(0, digits - 1 - int(math.floor(math.log10(abs(value)))))
    return f"{value:.{decimals}f}"


def comparison_rows(results: list[Result], baseline: str | None = "fp32") -> list[Row]:
    base_lat: dict[tuple, float] = {}
    base_size: dict[str, int] = {}
    for r in results:
        if r.flag_set != baseline:
            continue
        if r.size_bytes:
            base_size[r.model] = r.size_bytes
        if r.status == "ok" and r.latency_us:
            base_lat[(r.model, r.device, r.threads, r.xnnpack, r.runtime)] = r.latency_us["p50"]
    rows = []
    for r in results:
        lat = r.latency_us or {}
        drift = r.drift or {}
        snr = drift.get("snr_db")
        if snr == "inf":
            snr = math.inf
        p50 = lat.get("p50")
        b = base_lat.get((r.model, r.device, r.threads, r.xnnpack, r.runtime))
        speedup = b / p50 if (b and p50 and r.status == "ok") else None
        size_ratio = r.size_bytes / base_size[r.model] if (r.size_bytes and r.model in base_size) else None
        values = {
            "model": r.model, "flag_set": r.flag_set, "device": r.device, "threads": r.threads, "status": r.status,
            "size_kb": r.size_bytes / 1024 if r.size_bytes else None, "size_ratio": size_ratio,
            "p50_ms": p50 / 1000 if p50 is not None else None,
            "p90_ms": lat["p90"] / 1000 if lat.get("p90") is not None else None,
            "speedup": speedup, "init_ms": r.init_us / 1000 if r.init_us is not None else None,
            "peak_mb": r.peak_rss_mb, "max_abs": drift.get("max_abs"), "cosine": drift.get("cosine"),
            "snr_db": snr, "top1": drift.get("top1_agreement"), "accuracy": drift.get("accuracy"),
            "reference_accuracy": drift.get("reference_accuracy"), "rep": r.representative,
            "reason": r.reason,
            "valid": r.validity,
            "p50_ci_ms": [x / 1000 for x in lat["p50_ci"]] if lat.get("p50_ci") else None,
        }
        text = {k: _fmt(v) for k, v in values.items()}
        if values["valid"] and values["valid"] != "valid":
            text["valid"] = "warn: " + values["valid"]
        for k in ("p50_ms", "p90_ms", "init_ms"):
            text[k] = _sig(values[k])
        text["max_abs"] = _fmt(values["max_abs"], 4)
        text["cosine"] = _fmt(values["cosine"], 4)
        text["snr_db"] = _fmt(values["snr_db"], 1)
        text["size_kb"] = _fmt(values["size_kb"], 1)
        text["peak_mb"] = _fmt(values["peak_mb"], 1)
        if values["speedup"] is not None:
            text["speedup"] = f"{values['speedup']:.2f}x"
        if values["size_ratio"] is not None:
            text["size_ratio"] = f"{values['size_ratio']:.2f}x"
        if values["accuracy"] is not None and values["reference_accuracy"] is not None:
            text["accuracy"] = f"{values['accuracy']:.3f} ({values['reference_accuracy']:.3f})"
        elif values["accuracy"] is not None:
            text["accuracy"] = f"{values['accuracy']:.3f}"
        for k in ("top1",):
            if values[k] is not None:
                text[k] = f"{values[k]:.3f}"
        rows.append(Row(values, text))
    return rows


TERMINAL_SKIP = {"p90_ms", "init_ms", "snr_db"}  # in the files, left out of the terminal for width


def visible_columns(rows: list[Row], terminal: bool = False) -> list[tuple[str, str, str]]:
    """Drop columns that say nothing for these rows (one device, one thread count)."""
    cols = []
    for key, header, desc in COLUMNS:
        if key in ("device", "threads") and len({r.values[key] for r in rows}) <= 1:
            continue
        if terminal and key in TERMINAL_SKIP:
            continue
        cols.append((key, header, desc))
    return cols


def rich_table(rows: list[Row], title: str | None = None):
    from rich.table import Table

    cols = visible_columns(rows, terminal=True)
    table = Table(title=title, show_lines=False, header_style="bold")
    numeric = {"size_kb", "size_ratio", "p50_ms", "p90_ms", "speedup", "init_ms", "peak_mb", "max_abs", "cosine",
               "snr_db", "top1", "accuracy", "threads"}
    for key, header, _ in cols:
        table.add_column(header, justify="right" if key in numeric else "left",
                         overflow="fold", no_wrap=key != "reason", min_width=30 if key == "reason" else None)
    styles = {"ok": "green", "unhealthy": "yellow", "unsupported": "magenta"}
    for r in rows:
        cells = []
        for key, _, _ in cols:
            text = r.text[key]
            if key == "status":
                text = f"[{styles.get(r.values['status'], 'red')}]{text}[/]"
            elif key == "valid":
                text = "-" if r.values["valid"] is None else ("yes" if r.values["valid"] == "valid" else "[yellow]warn[/]")
            elif key == "reason":
                from rich.markup import escape

                text = escape(text) if text != "-" else ""
                if r.values["valid"] not in (None, "valid"):
                    text = (text + " " if text else "") + escape(f"[{r.values['valid']}]")
            cells.append(text)
        table.add_row(*cells)
    return table


def markdown_table(rows: list[Row]) -> str:
    cols = visible_columns(rows)

    def esc(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")

    lines = ["| " + " | ".join(h for _, h, _ in cols) + " |",
             "|" + "|".join("---:" if k not in ("model", "flag_set", "device", "status", "rep", "reason") else "---"
                            for k, _, _ in cols) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(esc(r.text[k]) if r.text[k] != "-" or k != "reason" else ""
                                        for k, _, _ in cols) + " |")
    return "\n".join(lines) + "\n"
