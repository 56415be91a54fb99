"""Rows of metrics -> tables: a pandas frame, Markdown, LaTeX (booktabs), CSV, JSON and terminal text.

The summary tables (Markdown, LaTeX, terminal) show one row per run with the headline metrics: labels, units,
↑/↓ arrows and formats come from ``metric_specs.METRICS``; a value is shown as ``value [low, high]`` with its
95 % interval, ``mean ± std`` where several seeds were run, and "n/a" where the metric needs a capability the
run's model lacks (a column that is n/a for every row is left out, and the notes say so). How the numbers were
made (extractor and its feature-space caveat, sizes, intervals, reconstruction) and the warnings go underneath,
each fact and each warning once, naming the rows it concerns where it does not concern all. The JSON holds every
key; the CSV every column that holds a value in some row (``columns_markdown`` gives each one's label and unit).
"""

from __future__ import annotations

import json
import math
import re
from types import SimpleNamespace

import pandas as pd

from .metric_specs import DISENTANGLEMENT_KEYS, METRICS, UNITLESS, Metric, headline_metrics
from .protocol import compare_protocols
from .store import LIST_KEYS

COLUMN_KEY = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")  # snake_case: a column key, not a word

# (row key, column label, format) of the columns that describe a run rather than score it
INFO_COLUMNS = {
    "case": ("case", "s"),
    "run": ("run", "s"),
    "model": ("model", "s"),
    "sampler": ("sampler", "s"),
    "n_fake": ("n (samples)", "d"),
    "recon_method": ("recon via", "s"),
    "extractor_id": ("extractor", "s"),
    "codes_method": ("codes", "s"),
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


def with_factor_keys(rows: list[dict], keys) -> tuple[str, ...]:
    """``keys`` and, when a row was scored against known generative factors (sprites), the disentanglement scores:
    a table of such runs shows them; a table of digit runs has no such columns at all."""
    return (*keys, *DISENTANGLEMENT_KEYS) if any(row.get("mig") is not None for row in rows) else tuple(keys)


def sanity_keys(rows: list[dict]) -> tuple[str, ...]:
    """The sanity panel's columns; on a data set with known factors also the scores of its known-answer codes."""
    return with_factor_keys(rows, SANITY_KEYS)


# the headline: what the dashboard shows first and the page-width LaTeX table holds (every column: CSV / JSON)
HEADLINE_KEYS = ("run", "sampler", *(m.key for m in headline_metrics() if m.key not in ("kid_mean", "recon_ssim")))

JSON_KEYS = ("fid_curve", "protocol", "capabilities")
NOT_APPLICABLE = "n/a"  # the metric needs a capability the run's model lacks
NOT_COMPUTED = "–"  # it applies, but the row does not hold it
UNITLESS_TEXT = UNITLESS


def column_title(metric: Metric) -> str:
    """The column label of a metric: its label, its unit (none for a declared pure number, and not twice when the
    label says it), its arrow."""
    unit = metric.unit_text
    return metric.label + (f" ({unit})" if unit and unit not in metric.label else "") + metric.arrow


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
    text = format(value, fmt)
    # a value that rounds to zero reads 0, not -0.00 (an FID of -8e-14 from float rounding is 0)
    return text[1:] if text.startswith("-") and not text.strip("-0.e+") else text


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
        return NOT_APPLICABLE if key in METRICS and not applies(METRICS[key], row) else NOT_COMPUTED
    if fmt == "s":
        return str(value)
    text = _number(value, fmt)
    low, high = row.get(f"{key}_ci_low"), row.get(f"{key}_ci_high")
    if low is not None and high is not None:
        text += f" [{_number(low, fmt)}, {_number(high, fmt)}]"
    std = row.get(f"{key}_std")
    return f"{text} ± {_number(std, fmt)}" if std is not None else text


def applies_to_none(rows: list[dict], keys=SUMMARY_KEYS) -> list[str]:
    """The metric keys among ``keys`` that are n/a in every row (no row's model has what they need): a report
    leaves these columns out. None of ``keys`` when there are no rows."""
    return [
        key
        for key in keys
        if rows and key in METRICS and all(row.get(key) is None and not applies(METRICS[key], row) for row in rows)
    ]


def summary_frame(rows: list[dict], keys=SUMMARY_KEYS, drop_not_applicable: bool = False) -> pd.DataFrame:
    """The headline columns (``keys``) as formatted text, one row per run; ``drop_not_applicable``: without the
    columns that are n/a in every row (what the exported tables show)."""
    if drop_not_applicable:
        dropped = set(applies_to_none(rows, keys))
        keys = [key for key in keys if key not in dropped]
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


def row_label(row: dict) -> str:
    """A row's name in notes: its run, and its sampler where that is not the prior."""
    sampler = row.get("sampler", "prior")
    return str(row.get("run")) if sampler in ("prior", None) else f"{row.get('run')} ({sampler})"


def join_names(labels: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


def grouped(rows: list[dict], describe) -> list[tuple[str, list[str] | None]]:
    """Each distinct ``describe(row)`` text once, with the rows it holds for — None when it holds for every row
    (a fact shared by all rows is said once, not once per row). Rows whose description is None are skipped."""
    groups: dict[str, list[str]] = {}
    for row in rows:
        text = describe(row)
        if text is not None:
            labels = groups.setdefault(text, [])
            if row_label(row) not in labels:
                labels.append(row_label(row))
    described = [row for row in rows if describe(row) is not None]
    if len(groups) == 1 and len(described) == len(rows):
        return [(next(iter(groups)), None)]
    return [(text, labels) for text, labels in groups.items()]


def fact_sentence(rows: list[dict], describe) -> str | None:
    """One sentence of a fact: said once when every row shares it, else per group of rows (``for a and b``)."""
    parts = grouped(rows, describe)
    if not parts:
        return None
    if len(parts) == 1 and parts[0][1] is None:
        return parts[0][0]
    return "; ".join(f"{text} for {join_names(labels)}" for text, labels in parts)


def readable_warning(text: str) -> str:
    """A warning with each column key it names (``fid_ratio``, as older evaluations stored it) replaced by the
    column's label (``FID / floor``), the name the tables show."""
    return COLUMN_KEY.sub(lambda found: METRICS[found[0]].label if found[0] in METRICS else found[0], text)


def warning_lines(rows: list[dict]) -> list[str]:
    """Each warning once, in the tables' column names, with the rows it concerns ("all rows" when it concerns
    every one of several)."""
    groups: dict[str, list[str]] = {}
    for row in rows:
        for text in map(readable_warning, row.get("warnings") or []):
            labels = groups.setdefault(text, [])
            if row_label(row) not in labels:
                labels.append(row_label(row))
    every = {row_label(row) for row in rows}
    return [
        f"{'all rows' if len(every) > 1 and set(labels) == every else ', '.join(labels)}: {text}"
        for text, labels in groups.items()
    ]


def _features(row: dict) -> str | None:
    if not row.get("extractor_id"):
        return None
    acc = row.get("extractor_test_acc")
    acc_text = f", test accuracy {acc:.1%}" if acc is not None else ""
    return (
        f"features: {row['extractor_id']}, a small classifier trained by this project on the dataset's train "
        f"split{acc_text}"
    )


def _sizes(row: dict) -> str:
    seeds = row.get("seeds") or []
    seed_text = f"sampling seed{'s' if len(seeds) > 1 else ''} {', '.join(str(s) for s in seeds)}"
    return (
        f"{row.get('n_fake')} samples per run ({seed_text}) against {row.get('n_real')} real images "
        f"({row.get('reference', 'train split')}) and {row.get('n_test')} held-out test images"
    )


def _bootstrap(row: dict) -> str | None:
    boot = row.get("bootstrap")
    return f"[low, high]: 95 % bootstrap interval ({boot} resamples)" if boot else None


def _reconstruction(row: dict) -> str | None:
    if row.get("recon_n") is None:
        return None
    method = row.get("recon_method")
    return f"reconstruction error on {row['recon_n']} held-out test images" + (f" by {method}" if method else "")


def provenance(rows: list[dict]) -> str:
    """How the numbers were made, for under a table: each fact once (per group of rows where they differ), the
    feature-space caveat, and a flag on rows made under different protocols."""
    if not rows:
        return ""
    features = fact_sentence(rows, _features)
    sentences = [
        features,
        "FID, KID and precision/recall/density/coverage are measured in this classifier's feature space, not in "
        "Inception-v3's, so they compare these runs with each other but not with FID values published in papers"
        if features
        else None,
        fact_sentence(rows, _sizes),
        fact_sentence(rows, _bootstrap),
        fact_sentence(rows, _reconstruction),
    ]
    check = compare_protocols(rows)
    if not check.same and len(rows) > 1:
        sentences.append(f"Not comparable as they stand: {check.describe()}")
    return "".join(s[0].upper() + s[1:] + ". " for s in sentences if s).strip()


def table_notes(rows: list[dict], keys=SUMMARY_KEYS) -> str:
    """What the table's symbols mean and which columns it leaves out, each said once."""
    frame = summary_frame(rows, keys, drop_not_applicable=True)
    cells = set(frame.to_numpy().ravel().tolist())
    notes = []
    if NOT_APPLICABLE in cells:
        notes.append(f"{NOT_APPLICABLE} = the metric needs a capability the model lacks (e.g. a posterior)")
    if NOT_COMPUTED in cells:
        notes.append(f"{NOT_COMPUTED} = not computed for this row")
    left_out = applies_to_none(rows, keys)
    if left_out:
        labels = join_names([METRICS[key].label for key in left_out])
        notes.append(f"Left out, as they apply to none of these models: {labels}")
    return "".join(note + ". " for note in notes).strip()


def markdown_table(frame: pd.DataFrame) -> list[str]:
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    return lines + ["| " + " | ".join(str(v).replace("|", "\\|") for v in values) + " |" for values in frame.values]


def to_markdown(rows: list[dict]) -> str:
    """The summary table (columns that apply to no row left out), how it was made, its notes, each once."""
    table = summary_frame(rows, with_factor_keys(rows, SUMMARY_KEYS), drop_not_applicable=True)
    lines = [*markdown_table(table), "", provenance(rows)]
    notes = table_notes(rows)
    if notes:
        lines += ["", notes]
    warnings = warning_lines(rows)
    if warnings:
        lines += ["", "Warnings:", *[f"- {w}" for w in warnings]]
    return "\n".join(lines) + "\n"


def sanity_sample_sizes(rows: list[dict]) -> str:
    """Why "n (samples)" differs between cases: real images come from the test split, which may hold fewer than n."""
    image_rows = [row for row in rows if row.get("n_fake") and row.get("n_real")]
    if not image_rows:
        return ""
    most = max(row["n_fake"] for row in image_rows)
    fewer = [f"{row['case']} {row['n_fake']}" for row in image_rows if row["n_fake"] < most]
    text = (
        f"n (samples): each case scores at most {most} images — the held-out test split's size or n, whichever is "
        f"smaller — against a reference of {image_rows[0]['n_real']} training images."
    )
    if fewer:
        text += (
            f" Fewer where a case keeps only some test images ({', '.join(fewer)}): FID is biased upwards at small n, "
            "so their FID is not comparable with the other rows' (KID is unbiased at any n, but noisier)."
        )
    codes = [row for row in rows if row.get("n_fake") and not row.get("n_real")]
    if codes:
        text += (
            f" The known-answer code rows ({', '.join(row['case'] for row in codes)}) score {codes[0]['n_fake']} "
            "codes against the images' true factors: no images, no reference."
        )
    return text


def sanity_markdown(rows: list[dict]) -> str:
    """The sanity panel: one row per corruption of real images, what each means, and the reference."""
    lines = [*markdown_table(summary_frame(rows, sanity_keys(rows))), ""]
    lines += [f"- **{row['case']}**: {row['meaning']}" for row in rows]
    if rows:
        first = rows[0]
        lines += [
            "",
            f"Reference: {first['n_real']} training images of {first['dataset']}, features of "
            f"{first['extractor_id']}; [low, high]: 95 % bootstrap interval ({first['bootstrap']} resamples).",
            sanity_sample_sizes(rows),
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
        ("×", r"$\times$"),
        ("≈", r"$\approx$"),
        ("σ", r"$\sigma$"),
        ("β", r"$\beta$"),
        ("²", r"$^2$"),
        ("³", r"$^3$"),
        ("∞", r"$\infty$"),
        ("–", "--"),
    ):
        text = text.replace(char, command)
    return text


def to_latex(rows: list[dict]) -> str:
    """A page-width booktabs table of the headline columns that apply to some row (needs
    \\usepackage{booktabs,graphicx}); the full table is the CSV. One caption says how the numbers were made and
    what the symbols mean, each fact once; the warnings, each once, follow as a footnote-sized list in the float."""
    frame = summary_frame(rows, HEADLINE_KEYS, drop_not_applicable=True)
    dropped = set(applies_to_none(rows, HEADLINE_KEYS))
    columns = [column for column in summary_columns(HEADLINE_KEYS) if column[0] not in dropped]
    datasets = sorted({str(row["dataset"]) for row in rows if row.get("dataset")})
    where = f" on {', '.join(datasets)}" if datasets else ""
    title = f"Generators compared{where} (↑ higher is better, ↓ lower)."
    caption = " ".join(filter(None, (title, provenance(rows), table_notes(rows, HEADLINE_KEYS))))
    lines = [
        "% needs \\usepackage{booktabs} and \\usepackage{graphicx}; every column is in metrics.csv",
        r"\begin{table}[ht]",
        r"\centering",
        r"\resizebox{\textwidth}{!}{%",
        r"\begin{tabular}{" + "".join("l" if fmt == "s" else "r" for _, _, fmt in columns) + "}",
        r"\toprule",
        " & ".join(_latex_escape(c) for c in frame.columns) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(_latex_escape(str(v)) for v in values) + r" \\" for values in frame.values]
    lines += [
        r"\bottomrule",
        r"\end{tabular}}",
        r"\caption{" + _latex_escape(caption) + "}",
        r"\label{tab:generators}",
    ]
    warnings = warning_lines(rows)
    if warnings:
        lines += [r"\begin{itemize}\footnotesize", *[r"\item " + _latex_escape(w) for w in warnings], r"\end{itemize}"]
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict]) -> str:
    """Every column that holds a value in some row (a column empty in every row, e.g. a metric that applies to
    none of these models, is left out; the JSON keeps every key)."""
    return rows_to_frame(rows).dropna(axis=1, how="all").to_csv(index=False)


# what the CSV's non-metric columns hold: (unit, meaning)
FIELD_DESCRIPTIONS = {
    "run": ("", "run folder name"),
    "model": ("", "model name in the registry"),
    "dataset": ("", "data set the run was trained on"),
    "sampler": ("", "latent sampler the samples were drawn with (prior, gmm, two-stage)"),
    "extractor_id": ("", "feature extractor (a classifier trained by this project) and the hash of its weights"),
    "extractor_test_acc": (UNITLESS_TEXT, "the extractor's test accuracy (share of test images)"),
    "n_real": ("images", "real images the samples are compared with"),
    "n_fake": ("samples", "samples drawn per run"),
    "n_test": ("images", "held-out test images"),
    "seeds": ("", "sampling seeds"),
    "class_histogram": ("share", "share of samples per class (by the extractor), comma-separated"),
    "recon_method": ("", "how test images were reconstructed (encode-decode or latent inversion)"),
    "recon_n": ("images", "held-out test images the reconstruction metrics average over"),
    "likelihood": ("", "likelihood the ELBO and IWAE bound use"),
    "kl_per_dim": ("nats", "KL of each latent dimension, comma-separated"),
    "mean_variance_per_dim": ("", "variance of each latent dimension's posterior mean over test images"),
    "fid_curve": ("", "FID at several n (JSON: n, fid, ci_low, ci_high)"),
    "warnings": ("", "what to keep in mind when reading the row"),
    "run_dir": ("", "run folder"),
    "bootstrap": ("resamples", "bootstrap resamples behind each 95 % interval"),
    "reference": ("", "the real images FID and precision/recall are measured against"),
    "run_step": ("steps", "training steps of the weights scored"),
    "run_created": ("UTC time", "when the run was created"),
    "weights_sha256": ("", "hash of the weights scored"),
    "capabilities": ("", "what the model can do (JSON)"),
    "fid_floor_n": ("images", "size of each real half behind the FID floor"),
    "fid_test_n_fake": ("samples", "samples compared with the test split"),
    "copy_n_train": ("images", "training images the copy rate searches"),
    "kid_subset_size": ("samples", "subset size of KID's estimates"),
    "iwae_k": ("importance samples", "importance samples per image of the IWAE bound"),
    "likelihood_n": ("images", "test images the likelihood bounds average over"),
    "protocol": ("", "how the row was made (JSON)"),
    "seconds": ("s", "time the evaluation took"),
    "evaluated": ("UTC time", "when the row was computed"),
}


def _column_description(key: str) -> tuple[str, str, str]:
    """(label, unit, meaning) of a CSV column: a metric, a metric's interval end or spread, or a row field."""
    for suffix, what in (
        ("_ci_low", "lower end of the 95 % interval of"),
        ("_ci_high", "upper end of the 95 % interval of"),
        ("_std", "standard deviation over seeds of"),
    ):
        base = key.removesuffix(suffix)
        if key.endswith(suffix) and base in METRICS:
            label, unit, _ = _column_description(base)
            return f"{label}: {what.split(' of')[0]}", unit, f"{what} {label}"
    if key in METRICS:
        m = METRICS[key]
        unit = m.unit_text or UNITLESS_TEXT
        if m.fmt == "kid":
            unit = f"{UNITLESS_TEXT} (the tables show it {m.unit_text})"
        return m.label, unit, m.meaning
    unit, meaning = FIELD_DESCRIPTIONS.get(key, ("", "not described"))
    return key, unit, meaning


def columns_markdown(rows: list[dict]) -> str:
    """``columns.md``: every column of the CSV with its label, unit and meaning (the CSV's header holds keys)."""
    frame = rows_to_frame(rows).dropna(axis=1, how="all")
    lines = ["| column | label | unit | meaning |", "|---|---|---|---|"]
    for key in frame.columns:
        label, unit, meaning = _column_description(key)
        lines.append(f"| `{key}` | {label} | {unit or '–'} | {meaning} |")
    return "\n".join(lines) + "\n"


def to_json(rows: list[dict]) -> str:
    return json.dumps(rows, indent=2) + "\n"


def to_text(rows: list[dict], width: int = 120) -> str:
    """The summary table for a terminal of ``width`` columns (pandas wraps the columns), warnings below."""
    table = summary_frame(rows, with_factor_keys(rows, SUMMARY_KEYS), drop_not_applicable=True)
    text = table.to_string(index=False, line_width=width)
    warnings = warning_lines(rows)
    return text + ("\n\nwarnings:\n" + "\n".join(f"  {w}" for w in warnings) if warnings else "") + "\n"
