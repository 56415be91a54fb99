"""The classic VAE-vs-GAN claims, each checked against the numbers measured on the selected runs.

A claim is "supported" or "not supported" only when these runs have the numbers it needs; otherwise it is
"not measured yet" and says what is missing. Nothing here trusts the textbook: short or odd runs may well
contradict it, and the page says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from generators.checkpoints import read_history

from .state import Run

SUPPORTED, NOT_SUPPORTED, MIXED, NOT_MEASURED = "supported", "not supported", "mixed", "not measured yet"
STABILITY_WINDOW = 0.5  # loss fluctuation is measured over the second half of training


@dataclass(frozen=True)
class Finding:
    claim: str
    verdict: str
    evidence: str


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.3g}"


def _first(
    runs: list[Run], rows: dict[str, dict], model: str, prefer_beta: float | None = None
) -> tuple[Run, dict] | None:
    """The run of ``model`` (the VAE with β closest to ``prefer_beta``) and its metric row ({} if none)."""
    candidates = [run for run in runs if run.model_name == model]
    if prefer_beta is not None:
        candidates.sort(key=lambda run: abs(float(run.info["model_config"].get("beta", 1.0)) - prefer_beta))
    return (candidates[0], rows.get(candidates[0].name, {})) if candidates else None


def _compare(
    claim: str, a: tuple[Run, dict] | None, b: tuple[Run, dict] | None, key: str, what: str, a_wins_when_higher: bool
) -> Finding:
    """``a`` beats ``b`` on metric ``key``: supported, not supported, or not measured yet."""
    if a is None or b is None:
        return Finding(claim, NOT_MEASURED, f"needs both models among the selected runs ({what}).")
    (run_a, row_a), (run_b, row_b) = a, b
    value_a, value_b = row_a.get(key), row_b.get(key)
    if value_a is None or value_b is None:
        lacking = [run.name for run, value in ((run_a, value_a), (run_b, value_b)) if value is None]
        return Finding(claim, NOT_MEASURED, f"no {key} for {', '.join(lacking)} yet (Metrics tab → Compute).")
    holds = value_a > value_b if a_wins_when_higher else value_a < value_b
    evidence = f"{what}: {run_a.name} {_fmt(value_a)} vs {run_b.name} {_fmt(value_b)}"
    return Finding(claim, SUPPORTED if holds else NOT_SUPPORTED, evidence + ".")


def gan_sharper(runs, rows) -> Finding:
    return _compare(
        "GAN samples are sharper than VAE samples.",
        _first(runs, rows, "dcgan"),
        _first(runs, rows, "vae", prefer_beta=1.0),
        "sharpness",
        "sharpness (higher = crisper)",
        True,
    )


def vae_covers_more_modes(runs, rows) -> Finding:
    claim = "The VAE covers more modes of the data than the GAN."
    vae, gan = _first(runs, rows, "vae", prefer_beta=1.0), _first(runs, rows, "dcgan")
    recall = _compare(claim, vae, gan, "recall", "recall (share of real data covered)", True)
    if recall.verdict == NOT_MEASURED:
        return recall
    modes = _compare(claim, vae, gan, "modes", "classes produced", True)
    tie = vae[1].get("modes") == gan[1].get("modes")
    verdicts = {recall.verdict, SUPPORTED if tie else modes.verdict}
    verdict = verdicts.pop() if len(verdicts) == 1 else MIXED
    return Finding(claim, verdict, f"{recall.evidence} {modes.evidence}")


def vae_smoother(runs, rows) -> Finding:
    return _compare(
        "The VAE's latent space is smoother than the plain autoencoder's.",
        _first(runs, rows, "vae", prefer_beta=1.0),
        _first(runs, rows, "ae"),
        "smoothness",
        "interpolation smoothness (lower = smoother)",
        False,
    )


def beta_trade_off(runs, rows) -> Finding:
    claim = "A larger β trades reconstruction quality for a more regular latent space."
    measured = sorted(
        (float(run.info["model_config"].get("beta", 1.0)), run.name, rows[run.name])
        for run in runs
        if run.model_name == "vae" and run.name in rows
    )
    measured = [m for m in measured if m[2].get("recon_mse") is not None]
    if len({beta for beta, _, _ in measured}) < 2:
        return Finding(
            claim,
            NOT_MEASURED,
            "needs metrics for at least two VAE runs with different β (select them, or use the β sweep tab).",
        )
    recon = [row["recon_mse"] for _, _, row in measured]
    units = [row.get("active_units") for _, _, row in measured]
    worse_recon = all(a <= b for a, b in zip(recon, recon[1:]))
    fewer_units = None not in units and all(a >= b for a, b in zip(units, units[1:]))
    evidence = "; ".join(
        f"β={beta:g} ({name}): recon MSE {_fmt(row['recon_mse'])}, active units {row.get('active_units', '—')}"
        for beta, name, row in measured
    )
    verdict = SUPPORTED if worse_recon and fewer_units else MIXED if worse_recon or fewer_units else NOT_SUPPORTED
    return Finding(claim, verdict, evidence + ".")


def ae_prior_garbage(runs, rows) -> Finding:
    return _compare(
        "An autoencoder sampled from N(0, I) produces garbage (much worse than the VAE).",
        _first(runs, rows, "ae"),
        _first(runs, rows, "vae", prefer_beta=1.0),
        "fid",
        "FID of prior samples (lower is better)",
        True,
    )


def loss_fluctuation(run: Run) -> tuple[str, float] | None:
    """Std / |mean| of the main loss over the second half of training (VAE: loss, GAN: generator loss)."""
    frame = pd.DataFrame(read_history(run.run_dir))
    column = "g_loss" if "g_loss" in frame.columns else "loss"
    if column not in frame.columns or len(frame) < 4:
        return None
    tail = frame[column].iloc[int(len(frame) * STABILITY_WINDOW) :]
    return column, float(tail.std() / max(abs(tail.mean()), 1e-12))


def vae_more_stable(runs, rows) -> Finding:
    claim = "VAE training is more stable than GAN training."
    vae, gan = _first(runs, rows, "vae", prefer_beta=1.0), _first(runs, rows, "dcgan")
    if vae is None or gan is None:
        return Finding(claim, NOT_MEASURED, "needs a VAE and a DCGAN among the selected runs.")
    vae_f, gan_f = loss_fluctuation(vae[0]), loss_fluctuation(gan[0])
    if vae_f is None or gan_f is None:
        return Finding(claim, NOT_MEASURED, "the runs' history.csv is too short to judge.")
    evidence = (
        f"relative fluctuation (std/|mean|) of the loss over the second half of training: "
        f"{vae[0].name} {vae_f[0]} {vae_f[1]:.3g} vs {gan[0].name} {gan_f[0]} {gan_f[1]:.3g}."
    )
    return Finding(claim, SUPPORTED if vae_f[1] < gan_f[1] else NOT_SUPPORTED, evidence)


CHECKS = (gan_sharper, vae_covers_more_modes, vae_smoother, beta_trade_off, ae_prior_garbage, vae_more_stable)


def assess(runs: list[Run], rows: list[dict]) -> list[Finding]:
    by_run = {row["run"]: row for row in rows}
    return [check(runs, by_run) for check in CHECKS]


def to_markdown(findings: list[Finding], runs: list[Run]) -> str:
    lines = ["# Findings", "", "Runs: " + ", ".join(run.label for run in runs), ""]
    for finding in findings:
        lines += [f"- **{finding.claim}** — *{finding.verdict}*. {finding.evidence}"]
    return "\n".join(lines) + "\n"
