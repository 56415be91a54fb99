"""Rows of metrics -> tables: a pandas frame, Markdown, LaTeX (booktabs), CSV, JSON and terminal text.

The summary tables (Markdown, LaTeX, terminal) show one row per run with the headline metrics: labels, units,
↑/↓ arrows and formats come from ``metric_specs.METRICS``; a value is shown as ``value [low, high]`` with its
95 % interval, ``mean ± std`` where several seeds were run, and "n/a" where the metric needs a capability the
run's model lacks. The warnings go underneath. CSV and JSON hold every column.
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pandas as pd

from .metric_specs import METRICS, Metric, headline_metrics
from .protocol import compare_protocols
from .store import LIST_KEYS

# (row key, column label, format) of the columns that describe a run rather than score it
INFO_COLUMNS = {
    "case": ("case", "s"),
    "run": ("run", "s"),
    "model": ("model", "s"),
    "sampler": ("sampler", "s"),
    "n_fake": ("n", "d"),
    "recon_method": ("recon via", "s"),
    "extractor_id": ("extractor", "s"),
}
SUMMARY_KEYS = (
    "run",
    "model",
    "sampler",
    "n_fake",
    "fid",
    "fid_floor",
    "fid_ratio",
    "fid_test",
    "fid_test_floor",
    "fid_inf",
    "kid_mean",
    "precision",
    "recall",
    "density",
    "coverage",
    "copy_rate",
    "modes",
    "mode_kl",
    "sharpness",
    "smoothness",
    "recon_method",
    "recon_mse",
    "recon_psnr",
    "recon_ssim",
    "elbo_nats",
    "iwae_nats",
    "iwae_bits_per_dim",
    "active_units",
    "extractor_id",
)
SANITY_KEYS = (
    "case",
    "n_fake",
    "fid",
    "fid_ratio",
    "kid_mean",
    "precision",
    "recall",
    "density",
    "coverage",
    "copy_rate",
    "modes",
    "sharpness",
)

# the headline: what the dashboard shows first and the page-width LaTeX table holds (every column: CSV / JSON)
HEADLINE_KEYS = ("run", "sampler", *(m.key for m in headline_metrics() if m.key not in ("kid_mean", "recon_ssim")))

JSON_KEYS = ("fid_curve", "protocol", "capabilities")
NOT_APPLICABLE = "n/a"


def column_title(metric: Metric) -> str:
    """The column label of a metric: its label, its ×10³ scale where the values are scaled, its arrow."""
    return metric.label + ("×10³" if metric.fmt == "kid" else "") + metric.arrow


def summary_columns(keys=SUMMARY_KEYS) -> list[tuple[str, str, str]]:
    """(row key, column label, format) of the summary tables, in order."""
    columns = []
    for key in keys:
        if key in INFO_COLUMNS:
            columns.append((key, *INFO_COLUMNS[key]))
        else:
            columns.append((key, column_title(METRICS[key]), METRICS[key].fmt))
    return columns


def _number(value, fmt: str) -> str:
    if fmt == "kid":
        return f"{value * 1e3:.2f}"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    if fmt == "d" and isinstance(value, float):
        return f"{value:.1f}"
    return format(value, fmt)


def applies(metric: Metric, row: dict) -> bool:
    """Whether the run's model has the capabilities the metric needs (rows without stored capabilities: yes)."""
    capabilities = row.get("capabilities")
    if not isinstance(capabilities, dict):
        return True
    stored = SimpleNamespace(**capabilities)
    stored.conditional = capabilities.get("num_classes") is not None  # a property of Capabilities, not stored
    return metric.applies_to(stored)


def _cell(row: dict, key: str, fmt: str) -> str:
    value = row.get(key)
    if value is None:
        return NOT_APPLICABLE if key in METRICS and not applies(METRICS[key], row) else "–"
    if fmt == "s":
        return str(value)
    text = _number(value, fmt)
    low, high = row.get(f"{key}_ci_low"), row.get(f"{key}_ci_high")
    if low is not None and high is not None:
        text += f" [{_number(low, fmt)}, {_number(high, fmt)}]"
    std = row.get(f"{key}_std")
    return f"{text} ± {_number(std, fmt)}" if std is not None else text


def summary_frame(rows: list[dict], keys=SUMMARY_KEYS) -> pd.DataFrame:
    """The headline columns (``keys``) as formatted text, one row per run."""
    columns = summary_columns(keys)
    return pd.DataFrame(
        [[_cell(row, key, fmt) for key, _, fmt in columns] for row in rows],
        columns=[label for _, label, _ in columns],
    )


def rows_to_frame(rows: list[dict]) -> pd.DataFrame:
    """Every column of every row; list values (seeds, histograms, warnings) become compact text."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    frame = pd.DataFrame([{k: row.get(k) for k in keys} for row in rows], columns=keys)
    for key in LIST_KEYS:
        if key in frame:
            joiner = "; " if key == "warnings" else ","
            frame[key] = frame[key].map(lambda v, j=joiner: j.join(str(x) for x in v) if isinstance(v, list) else v)
    for key in JSON_KEYS:
        if key in frame:
            frame[key] = frame[key].map(lambda v: json.dumps(v) if isinstance(v, (list, dict)) else v)
    return frame


def warning_lines(rows: list[dict]) -> list[str]:
    return [f"{row.get('run')}: {text}" for row in rows for text in (row.get("warnings") or [])]


def provenance(rows: list[dict]) -> str:
    """How the numbers were made, for under a table; rows made under different protocols are flagged."""
    parts = []
    for row in rows:
        acc = row.get("extractor_test_acc")
        acc_text = f", test accuracy {acc:.1%}" if acc is not None else ""
        boot = row.get("bootstrap")
        boot_text = f"; [low, high]: 95 % bootstrap interval ({boot} resamples)" if boot else ""
        parts.append(
            f"{row.get('run')}: features of {row.get('extractor_id')}{acc_text}; "
            f"{row.get('n_real')} real ({row.get('reference', 'train split')}) and {row.get('n_test')} held-out "
            f"test images vs {row.get('n_fake')} samples, seeds {','.join(str(s) for s in row.get('seeds') or [])}"
            f"{boot_text}; reconstruction on {row.get('recon_n')} test images"
        )
    check = compare_protocols(rows)
    mixed = [] if check.same or len(rows) < 2 else [f"Not comparable as they stand: {check.describe()}"]
    return ". ".join(parts + mixed) + "."


def markdown_table(frame: pd.DataFrame) -> list[str]:
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    return lines + ["| " + " | ".join(str(v).replace("|", "\\|") for v in values) + " |" for values in frame.values]


def to_markdown(rows: list[dict]) -> str:
    lines = [*markdown_table(summary_frame(rows)), "", provenance(rows)]
    warnings = warning_lines(rows)
    if warnings:
        lines += ["", "Warnings:", *[f"- {w}" for w in warnings]]
    return "\n".join(lines) + "\n"


def sanity_markdown(rows: list[dict]) -> str:
    """The sanity panel: one row per corruption of real images, what each means, and the reference."""
    lines = [*markdown_table(summary_frame(rows, SANITY_KEYS)), ""]
    lines += [f"- **{row['case']}**: {row['meaning']}" for row in rows]
    if rows:
        first = rows[0]
        lines += [
            "",
            f"Reference: {first['n_real']} training images of {first['dataset']}, features of "
            f"{first['extractor_id']}; [low, high]: 95 % bootstrap interval ({first['bootstrap']} resamples).",
        ]
    return "\n".join(lines) + "\n"


def _latex_escape(text: str) -> str:
    for char, escaped in (
        ("\\", r"\textbackslash{}"),
        ("&", r"\&"),
        ("%", r"\%"),
        ("$", r"\$"),
        ("#", r"\#"),
        ("_", r"\_"),
        ("{", r"\{"),
        ("}", r"\}"),
        ("~", r"\textasciitilde{}"),
        ("^", r"\textasciicircum{}"),
    ):
        text = text.replace(char, escaped)
    for char, command in (
        ("±", r"$\pm$"),
        ("↓", r"$\downarrow$"),
        ("↑", r"$\uparrow$"),
        ("×10³", r"$\times 10^3$"),
        ("∞", r"$\infty$"),
        ("–", "--"),
    ):
        text = text.replace(char, command)
    return text


def to_latex(rows: list[dict]) -> str:
    """A page-width booktabs table of the headline columns (needs \\usepackage{booktabs,graphicx}); the full
    table is the CSV. Warnings become a footnote-sized list after it."""
    frame = summary_frame(rows, HEADLINE_KEYS)
    lines = [
        "% needs \\usepackage{booktabs} and \\usepackage{graphicx}; every column is in metrics.csv",
        r"\begin{table}[ht]",
        r"\centering",
        r"\resizebox{\textwidth}{!}{%",
        r"\begin{tabular}{" + "".join("l" if fmt == "s" else "r" for _, _, fmt in summary_columns(HEADLINE_KEYS)) + "}",
        r"\toprule",
        " & ".join(_latex_escape(c) for c in frame.columns) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(_latex_escape(str(v)) for v in values) + r" \\" for values in frame.values]
    lines += [
        r"\bottomrule",
        r"\end{tabular}}",
        r"\caption{" + _latex_escape(provenance(rows)) + "}",
        r"\label{tab:generators}",
        r"\end{table}",
    ]
    warnings = warning_lines(rows)
    if warnings:
        lines += [r"\begin{itemize}\footnotesize", *[r"\item " + _latex_escape(w) for w in warnings], r"\end{itemize}"]
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict]) -> str:
    return rows_to_frame(rows).to_csv(index=False)


def to_json(rows: list[dict]) -> str:
    return json.dumps(rows, indent=2) + "\n"


def to_text(rows: list[dict], width: int = 120) -> str:
    """The summary table for a terminal of ``width`` columns (pandas wraps the columns), warnings below."""
    text = summary_frame(rows).to_string(index=False, line_width=width)
    warnings = warning_lines(rows)
    return text + ("\n\nwarnings:\n" + "\n".join(f"  {w}" for w in warnings) if warnings else "") + "\n"
