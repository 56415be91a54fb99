"""Is a model with an encoder a good lossy compressor of the test images? Bits per image against distortion (PSNR,
SSIM, MSE), beside JPEG, WebP and PNG (Pillow) on the same images:

    python -m evaluation compress RUN_DIR… [--n N] [--json FILE] [--force] [--no-cache]

A model's rate is measured two ways, and each row says which:

- **quantised code** (an actual code): the encoder's code (a VAE's posterior mean) rounded to a grid of step Δ in
  every dimension, each cell costed at −log2 of the probability mass the prior gives it, summed over dimensions —
  what an arithmetic coder pays, to within a few bits per image. The rounded code is decoded to measure the
  distortion. Δ is in units of the prior's standard deviation; sweeping it traces a curve, and a huge Δ rounds
  every code to the prior's centre (about 0 bits, the decoded prior mode).
- **bits-back bound** (a model with a posterior): KL(q(z|x) ‖ p(z)) / ln 2 bits, the rate of bits-back coding of a
  posterior sample (Hinton & van Camp 1993; Townsend et al. 2019) — a bound reached only over a long chain of
  images, not a file for one image; its distortion is that of decoding one posterior sample.

The prior of a model with a posterior is N(0, I), the one its KL term is measured against. A plain autoencoder was
trained with no prior, so its codes are costed under a Gaussian fitted per dimension to the codes of its training
images: a coder built after training, and its rows say so. A class-conditional decoder needs the class too, so
log2(classes) bits per image (a uniform code) are added to its rates.

The codecs' bits are whole files (8 × bytes), headers included; ``header_bits`` is the part of each file a
collection of images could share (JPEG's tables — most of a 28×28 JPEG —, PNG's signature, IHDR and IEND, WebP's
RIFF headers). Non-finite numbers (a lossless code's PSNR is infinite) are null in the JSON.

Each run's rows, and the codecs' rows on the same test images, are stored in its ``compression.json``, one entry
per (n, steps, bootstrap, seed), tied to the weights that made them; a rerun with the same settings reads them back,
and the dashboard and the report zip show them without recomputing.
"""

from __future__ import annotations

import io
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from PIL import Image

from generators.checkpoints import atomic_write_bytes
from generators.errors import OneLineParser, UserError, run_command
from generators.limits import MAX_SAMPLES, int_in, printable
from generators.outputs import Output, check_outputs

from .bootstrap import DEFAULT_B, interval
from .reconstruction import reconstruction_scores
from .scoring import check_finite, subset
from .store import ResultsFile, weights_sha256

DEFAULT_N = 500
RESULTS_FILE = "compression.json"
VERSION = 1  # bump when the measurement changes: older entries are then recomputed
ROW_LISTS = ("rows", "codec_rows")  # an entry's model rows and the codecs' rows on the same images
ROW_NUMBERS = ("header_bits",) + tuple(  # the numbers a stored row may hold (or null)
    f"{key}{suffix}" for key in ("bits", "psnr", "ssim", "mse") for suffix in ("", "_ci_low", "_ci_high")
)
STEPS = (4.0, 2.0, 1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125)  # Δ in prior standard deviations
QUALITIES = (1, 5, 10, 20, 30, 50, 75, 90, 100)
FIT_IMAGES = 5000  # training images whose codes fit an autoencoder's Gaussian
BATCH = 500
MIN_STD = 1e-6  # a dead code dimension of an autoencoder (std 0) is costed as nearly constant
PNG_HEADER_BYTES = 8 + 25 + 12  # signature, IHDR chunk, IEND chunk
CODE_RATE = "quantised code, N(0, I) prior"
FITTED_RATE = "quantised code, Gaussian fitted to training codes (no prior)"
BITS_BACK_RATE = "bits-back bound KL/ln 2 (not a file)"
FILE_RATE = "file size, headers included"
PAYLOAD_RATE = "file size without shareable headers"
SHORT_RATES = {
    CODE_RATE: "quantised code",
    FITTED_RATE: "quantised code (fitted Gaussian)",
    BITS_BACK_RATE: "bits-back bound",
    FILE_RATE: "whole files",
    PAYLOAD_RATE: "without headers",
}


@dataclass(frozen=True)
class CodePrior:
    """A diagonal Gaussian the codes are costed under: per-dimension ``mean`` and ``std``, and the rows' label."""

    mean: torch.Tensor
    std: torch.Tensor
    rate: str


@dataclass(frozen=True)
class Codec:
    """A Pillow image format, its settings (qualities; ``None``: lossless) and how long a file's header is."""

    name: str
    format: str
    qualities: tuple
    header_bytes: object  # bytes of one file -> the length of its shareable header


def _riff_header(data: bytes) -> int:
    """WebP: everything before the image chunk's payload (RIFF header, a VP8X chunk if any, the chunk header)."""
    found = [i for i in (data.find(b"VP8 "), data.find(b"VP8L")) if i >= 0]
    return min(found) + 8 if found else 0


CODECS = (
    Codec("JPEG", "JPEG", QUALITIES, lambda data: max(data.find(b"\xff\xda"), 0)),  # up to the start of scan
    Codec("WebP", "WEBP", QUALITIES, _riff_header),
    Codec("PNG", "PNG", (None,), lambda data: PNG_HEADER_BYTES),
)


# --- bits of a quantised code ---------------------------------------------------------------------------------


def quantise(codes: torch.Tensor, prior: CodePrior, step: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(grid cells in standardised units, the code they decode from): each dimension rounded to step ``step``
    prior standard deviations around the prior's mean."""
    cells = torch.round((codes.double() - prior.mean) / prior.std / step)
    return cells, (prior.mean + prior.std * cells * step).float()


def gaussian_cell_bits(cells: torch.Tensor, step: float) -> torch.Tensor:
    """Bits per row: −log2 of the N(0, 1) mass of each cell [(c − ½)Δ, (c + ½)Δ], summed over the last dimension.
    Cells above 0 are mirrored below it, where log Φ keeps its precision far in the tail."""
    cells = cells.double()
    low, high = (cells - 0.5) * step, (cells + 0.5) * step
    flip = cells > 0
    low, high = torch.where(flip, -high, low), torch.where(flip, -low, high)
    log_high, log_low = torch.special.log_ndtr(high), torch.special.log_ndtr(low)
    log_mass = log_high + torch.log(-torch.expm1(log_low - log_high))
    return -(log_mass / math.log(2)).sum(-1)


def kl_bits(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, σ²) ‖ N(0, I)) in bits per row: the bits-back rate of a posterior sample."""
    from generators.vae import gaussian_kl

    return gaussian_kl(mu.double(), logvar.double()).sum(-1) / math.log(2)


# --- a model's rows -------------------------------------------------------------------------------------------


def _labels_kw(model, labels: torch.Tensor | None, start: int) -> dict:
    if labels is None or not model.capabilities.conditional:
        return {}
    return model.label_kwargs(labels[start : start + BATCH].to(model.device))


@torch.inference_mode()
def posterior_codes(model, images: torch.Tensor, labels=None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(codes, log-variances): a model with a posterior gives its mean and log σ², any other encoder its code."""
    means, logvars = [], []
    for start in range(0, len(images), BATCH):
        x, kw = images[start : start + BATCH].to(model.device), _labels_kw(model, labels, start)
        mu, logvar = model.posterior(x, **kw) if model.capabilities.posterior else (model.encode(x, **kw), None)
        means.append(mu.cpu())
        logvars.append(None if logvar is None else logvar.cpu())
    return torch.cat(means), None if logvars[0] is None else torch.cat(logvars)


@torch.inference_mode()
def decode_codes(model, codes: torch.Tensor, labels=None) -> torch.Tensor:
    parts = [
        model.decode(codes[start : start + BATCH].to(model.device), **_labels_kw(model, labels, start)).cpu()
        for start in range(0, len(codes), BATCH)
    ]
    return torch.cat(parts).clamp(0, 1)


def code_prior(model, train) -> CodePrior:
    """N(0, I) for a model with a posterior; for another encoder, a Gaussian fitted to its training codes."""
    dims = model.capabilities.latent_shape[-1]
    if model.capabilities.posterior:
        return CodePrior(torch.zeros(dims, dtype=torch.float64), torch.ones(dims, dtype=torch.float64), CODE_RATE)
    index = subset(len(train), min(FIT_IMAGES, len(train)))
    labels = train.labels[index] if train.labels is not None else None
    codes = posterior_codes(model, train.images[index].float() / 255, labels)[0].double()
    return CodePrior(codes.mean(0), codes.std(0).clamp_min(MIN_STD), FITTED_RATE)


def model_rows(run, images, labels, *, steps=STEPS, bootstrap: int = DEFAULT_B, seed: int = 0) -> list[dict]:
    """The quantised-code curve (one row per Δ) and, with a posterior, the bits-back point of ``run`` on
    ``images`` (float in [0, 1]; ``labels`` their classes, used by a class-conditional model)."""
    model = run.model()
    classes = model.capabilities.num_classes
    label_bits = math.log2(classes) if classes else 0.0
    mu, logvar = posterior_codes(model, images, labels)
    prior = code_prior(model, run.dataset().train)
    score = _scorer(run.name, images, bootstrap, seed, label_bits=label_bits)
    rows = []
    for step in steps:
        cells, code = quantise(mu, prior, step)
        recon = decode_codes(model, code, labels)
        rows += score(f"Δ = {step:g}", step, recon, {prior.rate: gaussian_cell_bits(cells, step) + label_bits})
    if logvar is not None:
        noise = torch.randn(mu.shape, generator=torch.Generator().manual_seed(seed))
        recon = decode_codes(model, mu + noise * (0.5 * logvar).exp(), labels)
        rows += score("posterior sample", None, recon, {BITS_BACK_RATE: kl_bits(mu, logvar) + label_bits})
    return rows


# --- the codecs' rows -----------------------------------------------------------------------------------------


def _pil(image: np.ndarray) -> Image.Image:
    """One (C, H, W) uint8 image as a grey or RGB picture."""
    return Image.fromarray(image[0]) if image.shape[0] == 1 else Image.fromarray(image.transpose(1, 2, 0))


def codec_round_trip(images: torch.Tensor, codec: Codec, quality) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(decoded images in [0, 1], bits of each file, bits of each file's header) of uint8 ``images`` (N, C, H, W)."""
    options = {"optimize": True} if quality is None else {"quality": quality}
    decoded, bits, header = [], [], []
    for image in images.numpy():
        buffer = io.BytesIO()
        _pil(image).save(buffer, codec.format, **options)
        data = buffer.getvalue()
        mode = "L" if image.shape[0] == 1 else "RGB"
        pixels = np.asarray(Image.open(io.BytesIO(data)).convert(mode))
        decoded.append(pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1))
        bits.append(8.0 * len(data))
        header.append(8.0 * codec.header_bytes(data))
    return torch.from_numpy(np.stack(decoded)).float() / 255, torch.tensor(bits), torch.tensor(header)


def codec_rows(images: torch.Tensor, *, codecs=CODECS, bootstrap: int = DEFAULT_B, seed: int = 0) -> list[dict]:
    """Every codec at every quality on uint8 ``images``, counted twice: whole files (headers included, their mean
    size in ``header_bits``) and the files without the headers a collection of images could share."""
    rows = []
    for codec in codecs:
        score = _scorer(codec.name, images.float() / 255, bootstrap, seed)
        for quality in codec.qualities:
            recon, bits, header = codec_round_trip(images, codec, quality)
            setting = "lossless" if quality is None else f"quality {quality}"
            whole, shared = score(setting, quality, recon, {FILE_RATE: bits, PAYLOAD_RATE: bits - header})
            rows += [{**whole, "header_bits": header.mean().item()}, shared]
    return rows


# --- rows, all runs -------------------------------------------------------------------------------------------


def _scorer(name, images: torch.Tensor, bootstrap: int, seed: int, **extra):
    """``score(setting, param, reconstructions, {rate: bits per image}) -> rows`` on ``images``: one row per way of
    counting the rate, each with the mean bits and the reconstructions' PSNR / SSIM / MSE, all with a 95 % interval
    from one set of image resamples (those of ``reconstruction_scores``, drawn from ``seed``)."""
    picks = torch.randint(len(images), (bootstrap, len(images)), generator=torch.Generator().manual_seed(seed))

    def score(setting: str, param, recon: torch.Tensor, rates: dict[str, torch.Tensor]) -> list[dict]:
        check_finite(recon, f"the reconstructions of {name}")
        scores = reconstruction_scores(recon, images, bootstrap=bootstrap, seed=seed)
        distortion = {
            f"{key}{suffix}": scores[f"recon_{key}{suffix}"]
            for key in ("psnr", "ssim", "mse")
            for suffix in ("", "_ci_low", "_ci_high")
            if f"recon_{key}{suffix}" in scores
        }
        rows = []
        for rate, bits in rates.items():
            row = {"name": name, "rate": rate, "setting": setting, "param": param, "n": len(images), **extra}
            row["bits"] = bits.double().mean().item()
            if bootstrap:
                replicates = bits.double()[picks].mean(1)
                row["bits_ci_low"], row["bits_ci_high"] = interval(replicates, row["bits"], lower=0.0)
            rows.append({**row, **distortion})
        return rows

    return score


def test_subset(data, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The first ``n`` images (uint8) of the evaluation's fixed shuffle of the test split, and their labels."""
    test = data.test
    index = subset(len(test), min(n, len(test)))
    return test.images[index], (test.labels[index] if test.labels is not None else None)


def entry_key(entry: dict) -> str:
    steps = ",".join(f"{step:g}" for step in entry["steps"])
    return f"n={entry['n']}|steps={steps}|bootstrap={entry['bootstrap']}|seed={entry['seed']}|version={VERSION}"


def _number(value, kind=(int, float)) -> bool:
    return isinstance(value, kind) and not isinstance(value, bool)


def _valid_row(row) -> bool:
    """What the figure and the table read of a row: names as text, a known rate, the bits and PSNR as numbers."""
    return (
        isinstance(row, dict)
        and all(isinstance(row.get(key), str) for key in ("name", "setting", "dataset"))
        and row.get("rate") in SHORT_RATES
        and _number(row.get("n"), int)
        and _number(row.get("bits"))
        and all(row.get(key) is None or _number(row[key]) for key in ROW_NUMBERS)
    )


def _valid_entry(entry: dict) -> bool:
    return (
        all(_number(entry.get(key), int) for key in ("n", "bootstrap", "seed"))
        and isinstance(entry.get("steps"), list)
        and all(_number(step) for step in entry["steps"])
        and all(
            isinstance(entry.get(key), list) and entry[key] and all(map(_valid_row, entry[key])) for key in ROW_LISTS
        )
    )


RESULTS = ResultsFile(RESULTS_FILE, entry_key, _valid_entry, {"format": VERSION})


def _finite(rows: list[dict]) -> list[dict]:
    """The rows with a non-finite number (a lossless code's infinite PSNR) as None: as JSON stores them."""
    return [{k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in r.items()} for r in rows]


def run_entry(run, n: int, *, steps, bootstrap: int, seed: int, use_cache: bool = True, codecs=None) -> dict:
    """The run's entry at these settings: read back from its compression.json, or measured and stored there — its
    model rows and the codecs' rows on the same test images (taken from ``codecs`` when it has them)."""
    data = run.dataset()
    images, labels = test_subset(data, n)
    settings = {"n": len(images), "steps": list(steps), "bootstrap": bootstrap, "seed": seed}
    sha = weights_sha256(run.run_dir)
    if use_cache and (found := RESULTS.read(run.run_dir, sha).get(entry_key(settings))):
        return found
    model = model_rows(run, images.float() / 255, labels, steps=steps, bootstrap=bootstrap, seed=seed)
    if codecs is None:
        codecs = codec_rows(images, bootstrap=bootstrap, seed=seed)
    entry = {
        **settings,
        "rows": _finite([{**row, "dataset": data.name} for row in model]),
        "codec_rows": _finite([{**row, "dataset": data.name} for row in codecs]),
    }
    RESULTS.add(run.run_dir, [entry], sha)
    return entry


def _joined(entries: list[dict]) -> list[dict]:
    """The model rows of ``entries``, then the codecs' rows once per dataset."""
    codecs = {}
    for entry in entries:
        codecs.setdefault(entry["codec_rows"][0]["dataset"], entry["codec_rows"])
    return [row for entry in entries for row in entry["rows"]] + [row for rows in codecs.values() for row in rows]


def compress_runs(
    runs, n: int = DEFAULT_N, *, steps=STEPS, bootstrap: int = DEFAULT_B, seed: int = 0, use_cache: bool = True
) -> list[dict]:
    """The rows of every run with an encoder and, once per dataset, of the codecs, on the same ``n`` test images
    (the whole test split when it is smaller); each row names its dataset. Each run's rows are stored in its
    compression.json and read back from there by a later call with the same settings (unless ``use_cache`` is
    False)."""
    encoders = [run for run in runs if run.capabilities.encoder]
    if not encoders:
        raise UserError("compression needs a run whose model has an encoder (a VAE or an autoencoder); none given")
    entries, codecs = [], {}
    for run in encoders:
        dataset = run.dataset().name
        entry = run_entry(
            run, n, steps=steps, bootstrap=bootstrap, seed=seed, use_cache=use_cache, codecs=codecs.get(dataset)
        )
        codecs.setdefault(dataset, entry["codec_rows"])
        entries.append(entry)
    return _joined(entries)


def stored_compression(runs) -> list[dict]:
    """The stored rows (at the default steps, bootstrap and seed: those of the command and the dashboard) of the
    runs with an encoder, at the largest n any of them has; [] when none has. Nothing is computed."""
    found = {}
    for run in runs:
        if run.capabilities.encoder:
            for entry in RESULTS.read(run.run_dir).values():
                if entry["steps"] == list(STEPS) and entry["bootstrap"] == DEFAULT_B and entry["seed"] == 0:
                    found.setdefault(entry["n"], []).append(entry)
    return _joined(found[max(found)]) if found else []


# --- table, JSON and figure -----------------------------------------------------------------------------------


def _with_interval(row: dict, key: str, fmt: str) -> str:
    value = row.get(key)
    if value is None:
        return "–"
    if row.get(f"{key}_ci_low") is None:
        return format(value, fmt)
    return f"{value:{fmt}} [{row[f'{key}_ci_low']:{fmt}}, {row[f'{key}_ci_high']:{fmt}}]"


def table(rows: list[dict]) -> pd.DataFrame:
    """One line per point: who, how the rate is counted, the setting, bits per image and the distortions."""
    return pd.DataFrame(
        {
            "model / codec": row["name"],
            "rate": row["rate"],
            "setting": row["setting"],
            "bits/image [95 % CI]": _with_interval(row, "bits", ".1f"),
            "PSNR dB": _with_interval(row, "psnr", ".2f"),
            "SSIM": _with_interval(row, "ssim", ".3f"),
            "MSE": _with_interval(row, "mse", ".4f"),
            "header bits": "" if row.get("header_bits") is None else f"{row['header_bits']:.0f}",
        }
        for row in rows
    )


def to_json(rows: list[dict]) -> str:
    """The rows as JSON, a non-finite number (a lossless code's infinite PSNR) as null."""
    return json.dumps(_finite(rows), indent=2, allow_nan=False) + "\n"


def _line_name(row: dict, datasets: int) -> str:
    name = f"{row['name']}: {SHORT_RATES[row['rate']]}"
    return f"{name} ({row['dataset']})" if datasets > 1 else name


def _add_line(figure: go.Figure, name: str, points: list[dict], colour: str) -> None:
    """One model's or codec's points, in order of rate: a line, a star (a bits-back bound: one point) or, for a
    lossless codec (infinite PSNR), a vertical line at its rate; dotted: a codec's files without their headers."""
    rate = points[0]["rate"]
    dash = "dot" if rate == PAYLOAD_RATE else None
    if points[0]["psnr"] is None or not math.isfinite(points[0]["psnr"]):  # None: read back from the JSON
        figure.add_vline(
            x=points[0]["bits"],
            line={"dash": dash or "dash", "color": colour},
            name=f"{name} (lossless)",
            showlegend=True,
        )
        return
    figure.add_scatter(
        x=[p["bits"] for p in points],
        y=[p["psnr"] for p in points],
        name=name,
        mode="markers" if rate == BITS_BACK_RATE else "lines+markers",
        marker={"symbol": "star", "size": 13} if rate == BITS_BACK_RATE else {},
        line={"dash": dash, "color": colour},
        text=[p["setting"] for p in points],
        hovertemplate="%{text}: %{x:.1f} bits, %{y:.2f} dB<extra>" + name + "</extra>",
    )


def compression_figure(rows: list[dict]) -> go.Figure:
    """PSNR against bits per image (log x): a line per model's code and per codec (dotted: without its headers), a
    star per bits-back bound, a vertical line per lossless codec; one colour per model or codec."""
    from .figures import TEMPLATE, styled

    figure = go.Figure()
    datasets = len({row["dataset"] for row in rows})
    lines: dict[str, list[dict]] = {}
    for row in rows:
        if row["bits"] > 0:  # a log axis has no 0
            lines.setdefault(_line_name(row, datasets), []).append(row)
    colours = TEMPLATE.layout.colorway
    owners = list(dict.fromkeys((row["name"], row["dataset"]) for row in rows))
    for name, points in lines.items():
        colour = colours[owners.index((points[0]["name"], points[0]["dataset"])) % len(colours)]
        _add_line(figure, name, sorted(points, key=lambda p: p["bits"]), colour)
    figure.update_layout(
        height=540,
        title=f"Compression of {rows[0]['n'] if rows else 0} test images: distortion against rate",
        xaxis={"type": "log", "title": "rate: bits per image (log scale)"},
        yaxis_title="distortion: PSNR (dB, higher is better)",
        legend={"orientation": "h", "y": -0.18},
        margin={"b": 150},
    )
    return styled(figure)


# --- the command ----------------------------------------------------------------------------------------------


def build_parser(prog: str = "python -m evaluation compress") -> OneLineParser:
    parser = OneLineParser(
        prog=prog,
        description="bits per image against PSNR / SSIM / MSE of the runs' codes, beside JPEG, WebP and PNG",
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders (models with an encoder)")
    parser.add_argument(
        "--n",
        type=int_in(1, MAX_SAMPLES),
        default=DEFAULT_N,
        help=f"test images (default {DEFAULT_N}; the whole test split when it is smaller)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    parser.add_argument("--no-cache", action="store_true", help="recompute even if compression.json has the rows")
    parser.add_argument("--force", action="store_true", help="replace an existing --json file even when it is not JSON")
    return parser


def _compress(args) -> int:
    from .runs import load_runs

    outputs = check_outputs([Output("--json", Path(args.json), "json")] if args.json else [], force=args.force)
    runs = load_runs(args.run_dirs)
    for run in runs:
        if not run.capabilities.encoder:
            print(f"warning: {printable(run.name)} has no encoder; it is left out", file=sys.stderr)
    rows = compress_runs(runs, args.n, use_cache=not args.no_cache)
    for dataset, n in dict.fromkeys((row["dataset"], row["n"]) for row in rows):
        print(f"{n} test images of {dataset}; intervals: 95 % over images ({DEFAULT_B} bootstrap resamples)")
    print(table(rows).to_string(index=False))  # one block however narrow the terminal: never wrapped
    for path in outputs:
        atomic_write_bytes(path, to_json(rows).encode())
        print(f"wrote json to {printable(str(path))}")
    return 0


def main(argv: list[str], prog: str = "python -m evaluation compress") -> int:
    return run_command(lambda: _compress(build_parser(prog).parse_args(argv)))
