"""`changes`' output: table rows, Markdown, JSON, JUnit and HTML forms of a `ChangesReport`."""

from __future__ import annotations

import datetime as dt
import json

from harness.report.changes import ChangesReport, ExactChange, LatencyChangePoint, MachineStep
from harness.report.compare_markdown import md_text

CHANGE_COLUMNS = ["run", "row", "what", "old -> new", "change [95% CI]", "p", "cause", "also changed", "verdict"]


def _ms(us: float) -> str:
    return f"{us / 1000:.3g} ms" if us >= 1000 else f"{us:.3g} µs"


def _latency_cells(c: LatencyChangePoint) -> list[str]:
    ci = "" if c.ci_low is None else f" [{c.ci_low:+.1%}, {c.ci_high:+.1%}]"
    verdict = "REGRESSED" if c.regression else "improved" if c.improvement else "changed"
    return [c.run_id, c.label, "latency p50", f"{_ms(c.before_us)} -> {_ms(c.after_us)}", f"{c.change:+.1%}{ci}",
            f"{c.p_value:.3f}", c.cause, "; ".join(c.also) or "-", verdict]


def _exact_cells(e: ExactChange) -> list[str]:
    return [e.run_id, e.label, e.figure, f"{e.old} -> {e.new}", "-", "-", e.causes[0] if e.causes else "-",
            "; ".join(e.also) or "-", "WORSE" if e.worse else "changed"]


def _machine_cells(m: MachineStep) -> list[str]:
    return [m.run_id, f"(all rows on {m.device})", "latency p50", "-", f"{m.change:+.1%}", "-", "machine",
            f"{m.rows} unchanged artifact(s) moved together", "machine (not a regression)"]


def change_rows(report: ChangesReport) -> list[list[str]]:
    """Every change, oldest run first: latency change points, exact changes, machine steps."""
    items = ([(c.run, 0, _latency_cells(c)) for c in report.latency]
             + [(e.run, 1, _exact_cells(e)) for e in report.exact]
             + [(m.run, 2, _machine_cells(m)) for m in report.machine])
    return [cells for _, _, cells in sorted(items, key=lambda t: (t[0], t[1], t[2][1]))]


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


RUN_COLUMNS = ["run", "started", "git", "changes introduced"]


def run_rows(report: ChangesReport) -> list[list[str]]:
    """The run list, newest first, with what each run introduced."""
    introduced = report.runs_with_changes()
    return [[r.id, _when(r.started_at), (r.git_commit or "-")[:10], "; ".join(introduced.get(i, [])) or "-"]
            for i, r in reversed(list(enumerate(report.data.runs)))]


def changes_markdown(report: ChangesReport) -> str:
    def esc(text: str) -> str:
        return md_text(str(text))  # plain Markdown, as compare's comment: no HTML entities, arrows

    lines = [f"**tflite-harness changes**: {esc(report.summary())}", ""]
    fails = report.failures()
    if fails:
        lines += [f"- REGRESSED {esc(s.label)}: {esc('; '.join(fails[s.key]))}"
                  for s in report.data.series if s.key in fails] + [""]
    rows = change_rows(report)
    if rows:
        lines += ["| " + " | ".join(CHANGE_COLUMNS) + " |", "|" + "---|" * len(CHANGE_COLUMNS)]
        lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    else:
        lines.append("No changes in these runs.")
    return "\n".join(lines) + "\n"


def changes_dict(report: ChangesReport) -> dict:
    from dataclasses import asdict

    fails = report.failures()
    introduced = report.runs_with_changes()
    return {
        "summary": report.summary(), "failed": bool(fails),
        "runs": [{"id": r.id, "started_at": r.started_at, "git_commit": r.git_commit,
                  "introduced": introduced.get(i, [])} for i, r in enumerate(report.data.runs)],
        "latency": [{**asdict(c), "key": list(c.key)} for c in report.latency],
        "exact": [{**asdict(e), "key": list(e.key)} for e in report.exact],
        "machine": [asdict(m) for m in report.machine],
        "failures": [{"key": list(k), "why": v} for k, v in fails.items()],
    }


def changes_json(report: ChangesReport) -> str:
    return json.dumps(changes_dict(report), indent=1, default=str)


def changes_junit(report: ChangesReport) -> str:
    """JUnit XML: one <testcase> per row series; a failure where `--fail-on regression` fails
    (the newest latency change point a regression, or an exact figure's newest change worse)."""
    import xml.etree.ElementTree as ET

    fails = report.failures()
    per_key: dict[str, list[str]] = {}
    for row in change_rows(report):
        per_key.setdefault(row[1], []).append(" | ".join(f"{h}: {v}" for h, v in zip(CHANGE_COLUMNS, row,
                                                                                        strict=True)))
    suite = ET.Element("testsuite", name="tflite-harness changes")
    for s in report.data.series:
        model, flag_set, device, threads, xnnpack = s.key
        case = ET.SubElement(suite, "testcase", classname=f"tflite-harness.{model}",
                             name=f"{flag_set} on {device} ({threads} thr{'' if xnnpack else ', no xnnpack'})")
        if s.key in fails:
            why = "; ".join(fails[s.key])
            ET.SubElement(case, "failure", message=why, type="REGRESSED").text = why
        ET.SubElement(case, "system-out").text = "\n".join(per_key.get(s.label, [])) or "no changes"
    suite.set("tests", str(len(report.data.series)))
    suite.set("failures", str(len(fails)))
    suite.set("errors", "0")
    ET.SubElement(suite, "system-out").text = report.summary()
    root = ET.Element("testsuites", name="tflite-harness changes", tests=str(len(report.data.series)),
                      failures=str(len(fails)))
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def marks_for(report: ChangesReport, model: str, flag_set: str) -> list[dict]:
    """The change points of one model/flag set as trend-plot marks (one per run, texts joined),
    and the machine's steps on its devices in grey."""
    by_run: dict[int, list[str]] = {}
    for c in report.latency:
        if c.key[:2] == (model, flag_set):
            by_run.setdefault(c.run, []).append(f"p50 {c.change:+.0%} ({c.cause})")
    for e in report.exact:
        if e.key[:2] == (model, flag_set) and e.figure != "artifact":
            by_run.setdefault(e.run, []).append(e.figure)
        elif e.key[:2] == (model, flag_set):
            by_run.setdefault(e.run, []).append("bytes")
    marks = [{"when": report.data.runs[j].started_at, "text": ", ".join(dict.fromkeys(texts))}
             for j, texts in sorted(by_run.items())]
    devices = {x.key[2] for x in report.data.series if x.key[:2] == (model, flag_set)}
    marks += [{"when": report.data.runs[m.run].started_at, "text": f"machine {m.change:+.0%}", "color": "#777777"}
              for m in report.machine if m.device in devices and m.run not in by_run]
    return marks


def changes_html(report: ChangesReport, histories: dict[tuple[str, str], list[dict]]) -> str:
    """A page: summary, the change table, the run list (what each run introduced), and the trend
    plot of every model/flag set in `histories` with its change points marked."""
    import html

    from markupsafe import Markup

    from harness.report import plots
    from harness.report.html import render_page

    def table(headers: list[str], rows: list[list[str]]) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
        body = "\n".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
        return f'<div class="table-box"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'

    rows = change_rows(report)
    parts = [f'<p id="changes-summary">{html.escape(report.summary())}</p>',
             table(CHANGE_COLUMNS, rows) if rows else "<p>No changes in these runs.</p>",
             '<h3 id="runs">Runs</h3>', table(RUN_COLUMNS, run_rows(report))]
    history = []
    for (model, flag_set), pts in histories.items():
        svg = plots.trend(pts, marks=marks_for(report, model, flag_set))
        history.append({"title": f"{model} / {flag_set}", "table": None,
                        "svg": Markup(svg) if svg else None})  # noqa: S704 - matplotlib escapes its text
    return render_page("tflite-harness changes", changes=Markup("\n".join(parts)),  # noqa: S704 - escaped above
                       history=history)
