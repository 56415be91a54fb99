"""Sweeps: runs of one model and one recipe that differ only in one setting (β, latent size, training-set size,
steps…) and their training seed, and their figures — any metric against the setting with a 95 % interval over
training seeds, and for β the rate (KL) against distortion (reconstruction). Runs that differ in anything else
(another model, option, budget or data) are never drawn on one curve. The dashboard's Sweeps tab and the report
zip draw these figures; ``python -m generators sweep`` trains them."""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go

from generators.checkpoints import read_history
from generators.registry import MODELS

from .comparison import WORSE, compare
from .diagnostics import HISTORY_TAIL_FRACTION, rate_distortion_point
from .metric_specs import METRICS, metric
from .rows import comparison_n, row_at

# train settings that do not change what a run learns (where its files are, which device, how often it logs, how
# its steps computed)
NOT_RECIPE = {"data_dir", "device", "log_every", "dataset"}
BUDGET_FIELDS = ("steps", "epochs", "minutes")
# settings a sweep can vary besides the model's own options: where a run's info holds each
TRAIN_SETTINGS = ("train_size", "batch_size")
DISTORTION_TITLES = {  # a VAE's recon setting -> what its logged reconstruction loss is (summed over pixels)
    "bce": "distortion: BCE −log p(x|z) (nats/image)",
    "mse": "distortion: squared error (sum/image)",
}
SETTING_TITLES = {"beta": "β", "latent_dim": "latent size", "train_size": "training-set size", "steps": "steps"}


def chosen_options(model: str, options: dict) -> list[str]:
    """The model's text options away from their defaults ("decoder broadcast", "recon mse"): what tells two recipes
    of one model apart at a glance (the numbers a label names already, z and steps, aside)."""
    if model not in MODELS:
        return []
    defaults = {f.name: f.default for f in dataclasses.fields(MODELS[model].Config)}
    return [
        f"{key} {value}"
        for key, value in options.items()
        if isinstance(value, str) and defaults.get(key, value) != value
    ]


@dataclass(frozen=True)
class Sweep:
    """Runs of one model and one recipe that differ only in β: model, dataset, every model option but β, the
    training settings and the steps reached. ``runs``: β -> run (the first by name when several)."""

    model: str
    dataset: str
    recipe: dict
    runs: dict

    @property
    def steps(self) -> int:
        return int(self.recipe["step"])

    @property
    def label(self) -> str:
        options = self.recipe["model_config"]
        train = self.recipe["train_config"]
        betas = ", ".join(f"{beta:g}" for beta in self.runs)
        chosen = "".join(f"{option}, " for option in chosen_options(self.model, options))
        return (
            f"{MODELS[self.model].title if self.model in MODELS else self.model}, z = {options.get('latent_dim')}, "
            f"{chosen}{self.steps} steps, batch {train.get('batch_size')}, seed {train.get('seed')} — "
            + (f"existing runs at β {betas}" if betas else "no runs yet")
        )


def recipe_of(run) -> dict:
    """Everything that shapes what ``run`` learnt except β (what a β sweep must hold fixed; its seed included)."""
    return recipe_without(run.info, "beta", keep_seed=True)


def recipe_without(info: dict, setting: str, keep_seed: bool = False) -> dict:
    """Everything that shapes what a run (its stored ``info``) learnt except ``setting`` and (unless ``keep_seed``)
    its training seed: two runs with equal recipes differ in nothing else. A steps sweep drops the budget too."""
    dropped = NOT_RECIPE | {setting} | (set() if keep_seed else {"seed"})
    if setting == "steps":
        dropped |= set(BUDGET_FIELDS)
    return {
        "model": info["model"],
        "dataset": info["dataset"],
        "model_config": {k: v for k, v in info["model_config"].items() if k != setting},
        "train_config": {k: v for k, v in info.get("train_config", {}).items() if k not in dropped},
        "step": None if setting == "steps" else int(info.get("step", 0)),
    }


def setting_value(info: dict, setting: str) -> float | None:
    """A run's value of a swept setting (None when it has none: e.g. a run on the whole split has no train_size)."""
    if setting == "steps":
        value = info.get("step")
    elif setting in TRAIN_SETTINGS:
        value = (info.get("train_config") or {}).get(setting)
    else:
        value = info["model_config"].get(setting)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def sweeps(runs, dataset: str) -> list[Sweep]:
    """The finished runs with a β (``Capabilities.beta``) on ``dataset``, grouped by recipe; most β values first."""
    groups: dict[str, list] = {}
    for run in sorted(runs, key=lambda r: r.name):
        if run.beta is not None and run.info["dataset"] == dataset and not run.training:  # declared and stored
            groups.setdefault(json.dumps(recipe_of(run), sort_keys=True), []).append(run)
    found = []
    for members in groups.values():
        by_beta: dict = {}
        for run in members:
            by_beta.setdefault(run.beta, run)
        recipe = recipe_of(members[0])
        found.append(Sweep(recipe["model"], dataset, recipe, dict(sorted(by_beta.items()))))
    return sorted(found, key=lambda sweep: (-len(sweep.runs), sweep.label))


def largest_sweep(runs, dataset: str) -> dict:
    """The sweep with the most β values (what the report exports): one model, one recipe."""
    found = sweeps(runs, dataset)
    return found[0].runs if found else {}


@dataclass(frozen=True)
class SettingSweep:
    """Runs of one model and one recipe that differ only in ``setting`` and their training seed. ``points``:
    value -> the runs at that value (one per training seed), in increasing value."""

    setting: str
    recipe: dict
    points: dict

    @property
    def model(self) -> str:
        return self.recipe["model"]

    @property
    def seeds(self) -> int:
        return max(len(runs) for runs in self.points.values())

    @property
    def label(self) -> str:
        options, train = self.recipe["model_config"], self.recipe["train_config"]
        title = MODELS[self.model].title if self.model in MODELS else self.model
        fixed = [f"z = {options['latent_dim']}" if "latent_dim" in options else None]
        fixed += [f"β = {options['beta']:g}" if options.get("beta") is not None else None]
        fixed += chosen_options(self.model, options)
        fixed += [f"{self.recipe['step']} steps" if self.recipe["step"] is not None else None]
        fixed += [f"{train['train_size']} training images" if train.get("train_size") else None]
        values = ", ".join(f"{value:g}" for value in self.points)
        seeds = f"{self.seeds} seed{'s' * (self.seeds > 1)}"
        described = ", ".join(part for part in fixed if part)
        return f"{title}, {described} — existing runs at {setting_title(self.setting)} {values} ({seeds})"


def setting_title(setting: str) -> str:
    return SETTING_TITLES.get(setting, setting.replace("_", " "))


def setting_sweeps(runs, dataset: str, setting: str) -> list[SettingSweep]:
    """The finished runs on ``dataset`` that have a value of ``setting``, grouped by every other part of their
    recipe (so two runs that differ in anything but the setting and the seed are never joined); the sweeps with
    the most values first."""
    groups: dict[str, dict] = {}
    for run in sorted(runs, key=lambda r: r.name):
        value = setting_value(run.info, setting)
        if value is None or run.info["dataset"] != dataset or run.training:
            continue
        key = json.dumps(recipe_without(run.info, setting), sort_keys=True, default=str)
        groups.setdefault(key, {}).setdefault(value, []).append(run)
    found = [SettingSweep(setting, json.loads(key), dict(sorted(points.items()))) for key, points in groups.items()]
    return sorted(found, key=lambda sweep: (-len(sweep.points), sweep.label))


def swept_settings(runs, dataset: str) -> list[str]:
    """The settings along which some runs on ``dataset`` form a sweep of at least two values."""
    names = {key for run in runs for key in run.info["model_config"]} | {*TRAIN_SETTINGS, "steps"}
    names -= {"image_shape", "num_classes"}
    found = [name for name in sorted(names) if any(len(s.points) > 1 for s in setting_sweeps(runs, dataset, name))]
    return sorted(found, key=lambda name: (name not in SETTING_TITLES, name))


def seed_interval(values: list[float]) -> tuple[float, float | None, float | None]:
    """The mean over training seeds and its 95 % t-interval (None for one seed: there is no spread to measure)."""
    from scipy import stats

    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None, None
    spread = stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - spread, mean + spread


def sweep_table(sweep: SettingSweep, key: str, n: int | None = None) -> pd.DataFrame:
    """Per value of the swept setting: ``key``'s mean over the training seeds measured at one n (``n``, default
    the largest every run of the sweep has a prior row at), its 95 % interval and how it was made — over seeds
    (t-interval) when two or more were measured, else the one run's own interval over samples."""
    runs = [run for members in sweep.points.values() for run in members]
    n = n if n is not None else comparison_n(runs)
    table = []
    for value, members in sweep.points.items():
        measured = [
            (run.name, row[key]) for run in members if n and (row := row_at(run, n)) and row.get(key) is not None
        ]
        if not measured:
            continue
        values = [float(v) for _, v in measured]
        mean, low, high = seed_interval(values)
        interval = f"t-interval over {len(values)} training seeds"
        if low is None:
            row = row_at(next(run for run in members if run.name == measured[0][0]), n)
            low, high = row.get(f"{key}_ci_low"), row.get(f"{key}_ci_high")
            interval = "one training seed: its interval over samples" if low is not None else "one training seed"
        table.append(
            {
                **{"value": value, "mean": mean, "low": low, "high": high, "seeds": len(values), "n": n},
                **{"interval": interval, "values": values, "runs": [name for name, _ in measured]},
            }
        )
    return pd.DataFrame(table)


def measured_metrics(sweep: SettingSweep) -> list[str]:
    """The declared metrics that at least one run of the sweep has a number for, in declaration order."""
    runs = [run for members in sweep.points.values() for run in members]
    n = comparison_n(runs)
    rows = [row for run in runs if n is not None and (row := row_at(run, n))]
    return [key for key in METRICS if any(isinstance(row.get(key), (int, float)) for row in rows)]


def data_needed(sweep: SettingSweep, values: list[float], key: str = "fid") -> tuple[float | None, str]:
    """The smallest of ``values`` (the swept setting's, e.g. training-set sizes) whose ``key`` is not clearly worse
    than the sweep's best — the difference's 95 % interval (``evaluation.comparison``) does not exclude zero — and
    the evidence; None when a point lacks a number or an interval (nothing could be tested)."""
    table = sweep_table(sweep, key).set_index("value")
    if not set(values) <= set(table.index) or table.loc[values, "low"].isna().any():
        return None, f"{sweep.label}: {metric(key).label} with an interval is missing for some of {values}"
    rows = {value: _interval_row(table.loc[value], key) for value in values}
    better_first = sorted(values, key=lambda value: rows[value][key], reverse=metric(key).higher_is_better is True)
    best = better_first[0]
    needed = next(value for value in sorted(values) if compare(rows[value], rows[best], key).outcome != WORSE)
    shown = ", ".join(f"{value:g}: {rows[value][key]:.4g}" for value in sorted(values))
    return (
        needed,
        f"{sweep.label}: {metric(key).label} by {setting_title(sweep.setting)} {shown}; best at {best:g}, "
        f"not clearly worse from {needed:g} on",
    )


def _interval_row(point, key: str) -> dict:
    """A sweep point as a metric row for ``compare``: its seeds as replicates (Welch's interval of a difference),
    or its one run's interval over samples."""
    if point["seeds"] > 1:
        return {key: point["mean"], f"{key}_replicates": point["values"], f"{key}_replicates_of": "training seeds"}
    return {key: point["mean"], f"{key}_ci_low": point["low"], f"{key}_ci_high": point["high"]}


def setting_axis(setting: str, values) -> dict:
    """The swept setting's axis: logarithmic for β (as in the rate–distortion figures, whatever β values are
    chosen) and for values that span a factor of 8 or more (data sizes)."""
    values = sorted(values)
    if values and values[0] > 0 and (setting == "beta" or values[-1] / values[0] >= 8):
        return {"type": "log", "title": f"{setting_title(setting)} (log scale)", **value_ticks(values)}
    return {"title": setting_title(setting), **value_ticks(values)}


def value_ticks(values) -> dict:
    """Ticks at the swept values, reading as the values themselves (0.5, not "5" on a log axis)."""
    return {"tickvals": list(values), "ticktext": [f"{v:g}" for v in values]}


def sweep_metric_figure(sweep: SettingSweep, key: str) -> go.Figure | None:
    """``key`` against the swept setting: the mean over training seeds with its 95 % interval, every seed's own
    value as a faint dot; None when no run of the sweep has it measured."""
    table = sweep_table(sweep, key)
    if table.empty:
        return None
    spec = metric(key)
    have = table["low"].notna()
    error = {
        "type": "data",
        "symmetric": False,
        "array": (table["high"] - table["mean"]).where(have, 0).tolist(),
        "arrayminus": (table["mean"] - table["low"]).where(have, 0).tolist(),
    }
    many = table["seeds"] > 1  # the points with several training seeds
    several = bool(many.any())
    figure = go.Figure(
        go.Scatter(
            x=table["value"],
            y=table["mean"],
            mode="lines+markers",
            error_y=error,
            name="mean over training seeds" if several else "the run's value",
            text=[
                f"{how}: [{low:.4g}, {high:.4g}]" if pd.notna(low) else how
                for how, low, high in zip(table["interval"], table["low"], table["high"])
            ],
            hovertemplate="%{x:g}: %{y:.4g}<br>%{text}<extra></extra>",
        )
    )
    if several:  # one seed per point: its own value is the line, a dot on top would say nothing
        seeds = table.explode("values")
        figure.add_trace(
            go.Scatter(x=seeds["value"], y=seeds["values"], mode="markers", name="each training seed", opacity=0.4)
        )
    if many.all():
        bars = "95 % interval over training seeds"
    elif several:
        bars = "95 % interval over seeds, over samples where one seed"
    else:
        bars = "95 % interval over samples"
    per_point = f"{sweep.seeds} training seeds per point" if sweep.seeds > 1 else "one training seed per point"
    figure.update_layout(
        height=380,
        xaxis=setting_axis(sweep.setting, table["value"]),
        yaxis_title=f"{spec.axis_title}, n = {int(table['n'].iloc[0])}",
        title=f"{spec.title} against {setting_title(sweep.setting)} ({per_point}; bars: {bars})",
    )
    return figure


def rate_distortion(by_beta: dict) -> pd.DataFrame:
    """Per run that logs them (``Capabilities.rate_distortion``): β, rate (nats, and ``rate_bits`` = nats / ln 2: the
    compression experiment's unit) and distortion at the end of training (evaluation.diagnostics), ordered by rate."""
    points = []
    for beta, run in by_beta.items():
        if not run.capabilities.rate_distortion:
            continue
        point = rate_distortion_point(pd.DataFrame(read_history(run.run_dir)))
        if point is not None:
            bits = point["rate"] / math.log(2)
            points.append({"β": beta, "label": f"β={beta:g}", **point, "rate_bits": bits, "run": run.name})
    return pd.DataFrame(points).sort_values("rate") if points else pd.DataFrame()


def distortion_title(by_beta: dict) -> str:
    """The distortion axis in the sweep's own units: its reconstruction loss, per image, as training logged it."""
    kinds = {run.info.get("model_config", {}).get("recon") for run in by_beta.values()}
    kind = kinds.pop() if len(kinds) == 1 else None
    return DISTORTION_TITLES.get(kind, "distortion: reconstruction loss per image (the model's own units)")


def sweep_figures(by_beta: dict) -> dict[str, go.Figure]:
    """Rate–distortion, and FID against β at the largest n every run of the sweep has a prior row at."""
    figures = {}
    n = comparison_n(list(by_beta.values()))
    points = rate_distortion(by_beta)
    if not points.empty:
        figure = go.Figure(
            go.Scatter(
                x=points["rate_bits"],
                y=points["distortion"],
                text=points["label"],
                mode="lines+markers+text",
                textposition="top center",
                customdata=points[["run"]],
                hovertemplate="%{customdata[0]}<extra></extra>",
            )
        )
        figure.update_layout(
            height=400,
            xaxis_title="rate: KL(q(z|x) ‖ p(z)) / ln 2 (bits/image)",
            yaxis_title=distortion_title(by_beta),
            title=(
                "Rate–distortion: one point per β, joined in order of rate<br><sup>means over the training batches "
                f"of the last {HISTORY_TAIL_FRACTION:.0%} of each run's steps (history.csv), not the test split</sup>"
            ),
            margin={"t": 90},
        )
        figure.update_yaxes(autorange=True, rangemode="normal")
        figure.update_traces(cliponaxis=False)  # a point's β label at the top edge stays readable
        figures["beta_rate_distortion"] = figure
    fid = metric("fid")
    measured = (
        []
        if n is None
        else [(beta, row) for beta, run in by_beta.items() if (row := row_at(run, n)) and row.get("fid") is not None]
    )
    if measured:
        betas = [beta for beta, _ in measured]
        low = [row["fid"] - row["fid_ci_low"] if row.get("fid_ci_low") is not None else 0 for _, row in measured]
        high = [row["fid_ci_high"] - row["fid"] if row.get("fid_ci_high") is not None else 0 for _, row in measured]
        figure = go.Figure(
            go.Scatter(
                x=betas,
                y=[row["fid"] for _, row in measured],
                mode="lines+markers",
                error_y={"type": "data", "symmetric": False, "array": high, "arrayminus": low},
                text=[row.get("run") for _, row in measured],
            )
        )
        figure.update_layout(
            height=360,
            xaxis=setting_axis("beta", betas),
            yaxis_title=f"{fid.axis_title}, n = {n}",
            title=f"FID of prior samples against β ({fid.title}; one run per β, all at n = {n}; bars: 95 % "
            "interval over samples)",
        )
        figures["beta_fid"] = figure
    return figures
