"""The Python API of the lab (imported by ``genlab`` on first use; see ``genlab``'s documentation)."""

from __future__ import annotations

from pathlib import Path

from evaluation.runs import Run as _RunRecord
from generators.errors import UserError

DEFAULT_OUT_DIR = "checkpoints"


def _flags(options: dict) -> list[str]:
    """``{"latent_dim": 8, "resume": True}`` -> ``["--latent-dim", "8", "--resume"]`` (False and None: left out)."""
    args = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        args += [flag] if value is True else [flag, str(value)]
    return args


class Run(_RunRecord):
    """A run folder: ``name``, ``run_dir``, ``info`` (its stored config), ``capabilities``, ``label``, ``model()``
    and ``sample``. Made by ``train`` or ``load``."""

    def sample(
        self, n: int, sampler: str = "prior", label: int | None = None, seed: int = 0, return_labels: bool = False
    ):
        """``n`` images as a uint8 array (N, C, H, W) in 0..255 — what ``python -m generators sample`` writes.

        ``sampler``: prior, gmm or two-stage (the fitted ones need an encoder); ``label``: the class to draw, for
        a class-conditional run (without it the classes come in equal shares); ``seed``: the same seed draws the
        same images; ``return_labels``: also return each image's class (int64, (N,); None for an unconditional
        run), as ``sample`` writes it to FILE.labels.npy."""
        import numpy as np
        import torch

        from generators.__main__ import build_parser, sample_labels
        from generators.samplers import latent_sampler

        argv = ["sample", str(self.run_dir), "--n", str(n), "--sampler", str(sampler), "--seed", str(seed)]
        args = build_parser().parse_args([*argv, "--out", "unused.npy", *_flags({"label": label})])
        model = self.model()
        labels = sample_labels(model, args.n, args.label)
        draw = latent_sampler(model, args.sampler, self.run_dir)
        generator = torch.Generator().manual_seed(args.seed)
        batches = []
        with torch.inference_mode():
            for start in range(0, args.n, args.batch_size):
                count = min(args.batch_size, args.n - start)
                z = draw(count, generator)
                kwargs = {} if labels is None else {"labels": labels[start : start + count].to(model.device)}
                images = model.decode(z, **kwargs).clamp(0, 1).mul(255).round().to(torch.uint8).cpu()
                batches.append(images.numpy())
        images = np.concatenate(batches)
        if return_labels:
            return images, None if labels is None else labels.numpy().astype(np.int64)
        return images

    def _repr_markdown_(self) -> str:
        step, seconds = self.info.get("step"), self.info.get("seconds")
        trained = f"{step} steps" + (f", {seconds:.0f} s" if isinstance(seconds, (int, float)) else "")
        return f"**{self.label}** — `{self.run_dir}` ({self.info.get('dataset')}, {trained})"


def load(path) -> Run:
    """The run in the folder ``path`` (a finished run: its model.safetensors holds the config)."""
    from generators.registry import load_plugins

    load_plugins()
    return Run.read(path)


def _runs(runs) -> list[Run]:
    """Runs or run folders -> runs, each once (``evaluation.runs.read_runs``: the same checks as the CLI)."""
    from evaluation.analysis import load_runs

    return [Run(run.name, run.run_dir, run.info) for run in load_runs(runs)]


def train(
    model: str,
    dataset: str = "mnist5k",
    *,
    steps: int | None = None,
    epochs: int | None = None,
    minutes: float | None = None,
    run: str | None = None,
    out_dir=DEFAULT_OUT_DIR,
    seed: int = 0,
    progress: bool = True,
    **options,
) -> Run:
    """Train ``model`` (vae, ae, dcgan, cvae, cdcgan or a plugin's) on ``dataset`` and return the run.

    Exactly ``python -m generators train MODEL --dataset … [--steps | --epochs | --minutes] --run … --out-dir …``:
    the budget (default 10 epochs), the run name (default ``MODEL-DATASET``), the folder of runs (default
    ``checkpoints``). ``options`` are the command line's other options with underscores, e.g. ``latent_dim=8``,
    ``beta=4.0``, ``batch_size=64``, ``resume=True``, ``overwrite=True``, ``device="cpu"``. ``progress``: show
    the tqdm bar."""
    from generators.__main__ import build_parser, cmd_train, default_run_name
    from generators.registry import load_plugins

    load_plugins()
    budget = {"steps": steps, "epochs": epochs, "minutes": minutes}
    argv = ["train", str(model), "--dataset", str(dataset), "--out-dir", str(out_dir), "--seed", str(seed)]
    argv += _flags({**budget, "run": run, "quiet": not progress, **options})
    args = build_parser().parse_args(argv)
    if args.seeds:
        raise UserError("train one run per call here (call train once per seed, with its own run name)")
    code = cmd_train(args)
    if code:
        raise UserError(f"training {model} stopped with exit code {code} (see the message above)")
    return load(Path(args.out_dir) / (args.run or default_run_name(args.model, args.dataset)))


def evaluate(
    runs,
    n: int = 5000,
    *,
    seed: int = 0,
    sampler: str = "prior",
    bootstrap: int | None = None,
    extractor: str = "classifier",
    extractor_dir=None,
    recompute: bool = False,
    progress: bool = True,
    **options,
):
    """Score the runs with one yardstick (``python -m evaluation RUN… --n N``) and return a pandas DataFrame, one
    row per run, every column (``frame.attrs["rows"]``: the rows as dicts). The rows are stored in each run's
    metrics.json, where ``findings``, ``report`` and the dashboard find them.

    ``extractor_dir``: where the feature extractor is cached (default: ``_extractors`` in the folder holding the
    first run, as the dashboard and the report use; the first evaluation of a dataset trains it, minutes on a
    CPU). ``options``: the command line's other options with underscores, e.g. ``iwae_k=100``,
    ``inversion_steps=50``."""
    from evaluation.__main__ import evaluate_with_args, label_rows, parse_args
    from evaluation.report import rows_to_frame
    from evaluation.runner import check_inputs
    from evaluation.runs import EXTRACTORS_FOLDER, lab_folder

    records = _runs(runs)
    cache = Path(extractor_dir) if extractor_dir is not None else lab_folder(records) / EXTRACTORS_FOLDER
    argv = [*(str(run.run_dir) for run in records), "--n", str(n), "--seed", str(seed), "--sampler", str(sampler)]
    argv += ["--extractor", str(extractor), "--extractor-dir", str(cache)]
    argv += _flags({"bootstrap": bootstrap, "no_cache": recompute, **options})
    args = parse_args(argv)
    for run in records:  # every bad input before the long work
        check_inputs(run.run_dir, sampler=args.sampler, extractor=args.extractor)
    rows = []
    for i, run in enumerate(records):

        def report(fraction: float, message: str, i=i, run=run) -> None:
            if progress:
                print(f"\r[{(i + fraction) / len(records):4.0%}] {run.name}: {message:<60.60}", end="", flush=True)

        rows.append(evaluate_with_args(run.run_dir, args, [args.seed], report))
    if progress:
        print()
    label_rows(rows, [str(run.run_dir) for run in records])
    frame = rows_to_frame(rows)
    frame.attrs["rows"] = rows
    return frame


class Findings(list):
    """The tested claims (``evaluation.findings.Finding``: claim, verdict, evidence); shown as Markdown in a
    notebook, ``.to_markdown()`` / ``.to_json()`` as the command line prints them."""

    def __init__(self, found, runs):
        super().__init__(found)
        self.runs = runs

    def to_markdown(self) -> str:
        from evaluation.findings import to_markdown

        return to_markdown(list(self), self.runs)

    def to_json(self) -> str:
        from evaluation.findings import to_json

        return to_json(list(self), self.runs)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()


def findings(runs) -> Findings:
    """The textbook VAE-vs-GAN claims tested on the runs' stored metrics (``python -m evaluation findings``): a
    claim is supported only when the 95 % interval of the difference excludes zero."""
    from evaluation.analysis import tested_claims

    records = _runs(runs)
    return Findings(tested_claims(records), records)


def figures(runs, *, seed: int = 0, samples: int = 64) -> dict:
    """The report's plotly figures by name (the metric charts at the runs' shared n, each run's training curves,
    the β sweep and the samples figure), made by the code the dashboard and the report use."""
    from evaluation.bundle import report_inputs
    from evaluation.charts import metric_figures, training_figures
    from evaluation.pictures import samples_figure
    from evaluation.rows import comparison_rows
    from evaluation.sweeps import sweep_figures
    from generators.limits import checked_int

    records = _runs(runs)
    inputs = report_inputs(records, seed=seed, n_samples=checked_int("samples", samples, 1, 1024))
    found = {**metric_figures(comparison_rows(records)), **training_figures(records)}
    found.update(sweep_figures(inputs.sweep()))
    found["samples"] = samples_figure(records, inputs.n_samples, inputs.seed)
    return found


def report(runs, path, *, seed: int = 0, samples: int = 64, force: bool = False) -> Path:
    """Write the report zip of the runs to ``path`` (``python -m evaluation report RUN… --out PATH``: the zip the
    dashboard's button builds) and return the path. ``path`` is refused inside a run folder, and an existing file
    that is not a zip is replaced only with ``force=True``."""
    from evaluation.analysis import build_report_parser, check_report_path, write_report

    records = _runs(runs)
    argv = ["x", "--out", str(path), "--seed", str(seed), "--samples", str(samples)]
    args = build_report_parser().parse_args(argv)  # the command line's checks of the numbers
    check_report_path(args.out, force)
    return write_report(records, args.out, seed=args.seed, samples=args.samples, force=force)
