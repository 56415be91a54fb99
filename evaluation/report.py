"""Rows of metrics -> tables: a pandas frame, Markdown, LaTeX (booktabs), CSV, JSON and terminal text.

The summary tables (Markdown, LaTeX, terminal) show one row per run with the headline metrics, ``mean ± std``
where several seeds were run, and the warnings underneath. CSV and JSON hold every column.
"""

from __future__ import annotations

import json
import math

import pandas as pd

# (row key, column label, format) of the summary tables; the label says the unit and which way is better
SUMMARY_COLUMNS = (
    ("run", "run", "s"),
    ("model", "model", "s"),
    ("sampler", "sampler", "s"),
    ("n_fake", "n", "d"),
    ("fid", "FID ↓", ".2f"),
    ("fid_floor", "floor", ".2f"),
    ("fid_ratio", "FID/floor ↓", ".2f"),
    ("kid_mean", "KID×10³ ↓", "kid"),
    ("precision", "prec ↑", ".3f"),
    ("recall", "recall ↑", ".3f"),
    ("density", "density", ".3f"),
    ("coverage", "cover ↑", ".3f"),
    ("modes", "modes", "g"),
    ("mode_kl", "mode KL ↓", ".3f"),
    ("sharpness", "sharp", ".2f"),
    ("smoothness", "smooth ↓", ".2f"),
    ("recon_method", "recon via", "s"),
    ("recon_mse", "MSE ↓", ".4f"),
    ("recon_psnr", "PSNR ↑", ".2f"),
    ("recon_ssim", "SSIM ↑", ".3f"),
    ("elbo_nats", "ELBO ↑", ".1f"),
    ("iwae_nats", "IWAE ↑", ".1f"),
    ("iwae_bits_per_dim", "bits/dim ↓", ".3f"),
    ("active_units", "active", "d"),
    ("extractor_id", "extractor", "s"),
)
LIST_KEYS = ("seeds", "class_histogram", "kl_per_dim", "warnings")


def _number(value, fmt: str) -> str:
    if fmt == "kid":
        return f"{value * 1e3:.2f}"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    return format(value, fmt)


def _cell(row: dict, key: str, fmt: str) -> str:
    value = row.get(key)
    if value is None:
        return "–"
    if fmt == "s":
        return str(value)
    text = _number(value, fmt)
    std = row.get(f"{key}_std")
    return f"{text} ± {_number(std, fmt)}" if std is not None else text


def summary_frame(rows: list[dict]) -> pd.DataFrame:
    """The headline columns as formatted text, one row per run."""
    return pd.DataFrame(
        [[_cell(row, key, fmt) for key, _, fmt in SUMMARY_COLUMNS] for row in rows],
        columns=[label for _, label, _ in SUMMARY_COLUMNS],
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
    return frame


def warning_lines(rows: list[dict]) -> list[str]:
    return [f"{row.get('run')}: {text}" for row in rows for text in (row.get("warnings") or [])]


def provenance(rows: list[dict]) -> str:
    """One sentence on how the numbers were made, for under a table."""
    parts = []
    for row in rows:
        acc = row.get("extractor_test_acc")
        acc_text = f", test accuracy {acc:.1%}" if acc is not None else ""
        parts.append(
            f"{row.get('run')}: features of {row.get('extractor_id')}{acc_text}; "
            f"{row.get('n_real')} real ({row.get('reference', 'train split')}) vs {row.get('n_fake')} "
            f"samples, seeds {','.join(str(s) for s in row.get('seeds') or [])}; "
            f"reconstruction on {row.get('recon_n')} test images"
        )
    return ". ".join(parts) + "."


def to_markdown(rows: list[dict]) -> str:
    frame = summary_frame(rows)
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(str(v).replace("|", "\\|") for v in values) + " |" for values in frame.values]
    lines += ["", provenance(rows)]
    warnings = warning_lines(rows)
    if warnings:
        lines += ["", "Warnings:", *[f"- {w}" for w in warnings]]
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
    """A booktabs table (needs \\usepackage{booktabs}); warnings become a footnote-sized list after it."""
    frame = summary_frame(rows)
    lines = [
        r"\begin{table}[ht]",
        r"\centering",
        r"\scriptsize",
        r"\setlength{\tabcolsep}{3pt}",
        r"\begin{tabular}{" + "".join("l" if fmt == "s" else "r" for _, _, fmt in SUMMARY_COLUMNS) + "}",
        r"\toprule",
        " & ".join(_latex_escape(c) for c in frame.columns) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(_latex_escape(str(v)) for v in values) + r" \\" for values in frame.values]
    lines += [
        r"\bottomrule",
        r"\end{tabular}",
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
