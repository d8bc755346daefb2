"""What the store-reading commands share: where output goes (stdout or --out), the
console, the store, small tables."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click


def console(file=None, max_width: int | None = None):
    """A console for stdout (or FILE). MAX_WIDTH caps the width unless COLUMNS says otherwise
    (the narrow comparison table fits 120 columns; `--wide` passes None)."""
    import shutil

    from rich.console import Console

    columns = int(os.environ.get("COLUMNS", 0) or 0)
    if file is not None:
        return Console(file=file, width=columns or min(220, max_width or 220), highlight=False, color_system=None)
    if sys.stdout.isatty():
        width = shutil.get_terminal_size((220, 24)).columns
    else:
        width = columns or max(220, shutil.get_terminal_size((220, 24)).columns)
    if max_width and not columns:
        width = min(width, max_width)
    return Console(highlight=False, width=width)


def open_store(path: Path | None):
    from harness.api import open_store as api_open_store

    return api_open_store(path)


def emit(text: str, out: Path | None) -> None:
    """Print text, or write it to --out."""
    if out is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    write(out, text)
    click.echo(f"wrote {out}", err=True)


def write(path: Path, text: str) -> None:
    from harness.core.errors import UsageError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path} ({exc.strerror}); choose another place with --out") from None


def print_rich(renderable, out: Path | None, max_width: int | None = None) -> None:
    if out is None:
        console(max_width=max_width).print(renderable)
        return
    import io

    buf = io.StringIO()
    console(buf, max_width=max_width).print(renderable)
    emit(buf.getvalue(), out)


def when(ts: float | None) -> str:
    import datetime as dt

    return "-" if ts is None else dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def md_table(headers: list[str], rows: list[list[str]]) -> str:
    def esc(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")

    lines = ["| " + " | ".join(esc(h) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def rich_table(headers: list[str], rows: list[list[str]], title: str | None = None):
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title) if title else None, header_style="bold")
    for h in headers:
        table.add_column(escape(h))
    for row in rows:
        table.add_row(*(escape(str(c)) for c in row))
    return table
