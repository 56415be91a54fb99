"""Command line: python -m generators {train,sweep,sample,list}. Bad input -> one line on stderr, exit 2.

Several processes: torchrun --standalone --nproc_per_node N -m generators train MODEL ... (see ``train --help``)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

from .data import DATASET_NAMES
from .distributed import rank_zero_speaks
from .errors import OneLineParser, UserError, WriteFailed, out_of_memory_hint, run_command
from .limits import (
    MAX_BATCH_SIZE,
    MAX_CLASSES,
    MAX_EPOCHS,
    MAX_LABEL_PLANES,
    MAX_MINUTES,
    MAX_SAMPLES,
    MAX_STEPS,
    check_name_bytes,
    float_in,
    int_in,
    positive_int,
    printable,
    run_name,
    seed_int,
)
from .outputs import Output, check_outputs
from .registry import MODELS, load_plugins
from .samplers import SAMPLERS
from .sweep import add_sweep_parser, run_sweep

PROGRAM = "python -m generators"  # the name in usage and error lines; genlab passes its own (genlab train ...)
EXIT_DIVERGED = 1
FORCE_HELP = "replace an existing output file even when it is not of the output's kind (never a run's own files)"
MAX_TRAINING_SEEDS = 20


def model_option_fields() -> dict[str, dataclasses.Field]:
    """Every model config field offered on the command line, from all registered models."""
    fields = {}
    for cls in MODELS.values():
        for f in dataclasses.fields(cls.Config):
            if f.metadata.get("cli", True):
                fields.setdefault(f.name, f)
    return fields


def add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model options (each applies to the models whose config has it)")
    for name, f in model_option_fields().items():
        flag = "--" + name.replace("_", "-")
        owners = ", ".join(m for m, cls in MODELS.items() if name in {g.name for g in dataclasses.fields(cls.Config)})
        help_text = f"{f.metadata.get('help', '')} [{owners}]"
        if f.type in ("bool", bool):
            group.add_argument(flag, dest=name, action="store_const", const=True, default=None, help=help_text)
        else:
            kind = {"int": int, "float": float}.get(str(f.type), str)
            group.add_argument(
                flag, dest=name, type=kind, default=None, choices=f.metadata.get("choices"), help=help_text
            )


def build_parser(program: str = PROGRAM) -> argparse.ArgumentParser:
    """The parser of every subcommand (train, sample, sweep, list), named ``program`` in its usage and error
    lines (``args.program``: so a sweep parses its points under the same name)."""
    parser = OneLineParser(prog=program, description=__doc__)
    parser.set_defaults(program=program)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    add_train_parser(sub)
    add_sample_parser(sub)
    add_sweep_parser(sub, seed_int, MAX_TRAINING_SEEDS)
    listing = sub.add_parser("list", help="list the runs in a folder")
    listing.add_argument("--out-dir", default="checkpoints")
    return parser


def add_train_parser(sub) -> None:
    train = sub.add_parser(
        "train",
        help="train a model into a run folder",
        description="Train a model into a run folder. To train with several processes (CPU cores or GPUs, with"
        " DistributedDataParallel), start the same command under torchrun: torchrun --standalone --nproc_per_node N"
        " -m generators train MODEL --run-name NAME [options]. torchrun claims --run (short for its own --run-path),"
        " so name the run with --run-name there. --batch-size stays the global batch, split evenly over the N"
        " processes.",
    )
    train.add_argument("model", help=f"one of {', '.join(MODELS)}")
    add_data_options(train)
    add_budget_options(train)
    add_run_naming_options(train)
    add_compute_options(train)
    train.add_argument("--resume", action="store_true", help="continue the run in --run")
    train.add_argument("--overwrite", action="store_true", help="replace an existing run of that name")
    train.add_argument("--progress-json", help="also write progress to this file (used by the dashboard)")
    train.add_argument("--force", action="store_true", help=FORCE_HELP)
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    add_model_options(train)


def add_data_options(train: argparse.ArgumentParser) -> None:
    """What a run learns from: the data set, its image format, and which of its images."""
    train.add_argument("--dataset", default="mnist5k", help=" | ".join(DATASET_NAMES))
    train.add_argument("--data-dir", default="data", help="where torchvision datasets are downloaded/kept")
    train.add_argument("--image-size", type=positive_int, help="resize images to this square size")
    train.add_argument("--channels", type=int, choices=(1, 3), help="convert images to 1 or 3 channels")
    train.add_argument(
        "--train-size",
        type=int_in(1, MAX_STEPS),
        metavar="N",
        help="train on N images of the train split: a fixed seeded subset keeping every class's share (the same N "
        "images in every run); evaluation still scores on the whole test split",
    )
    train.add_argument(
        "--exclude-classes",
        type=int_in(0, MAX_CLASSES - 1),
        nargs="+",
        metavar="K",
        help="train without the images of these classes (e.g. 9): does the model still draw them? (evaluation "
        "reports the share of samples in them)",
    )


def add_budget_options(train: argparse.ArgumentParser) -> None:
    """How long a run trains (one of epochs, steps, minutes), on how many images per step, at which learning rates."""
    budget = train.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int_in(1, MAX_EPOCHS))
    budget.add_argument("--steps", type=int_in(1, MAX_STEPS))
    budget.add_argument("--minutes", type=float_in(0, MAX_MINUTES))
    train.add_argument(
        "--batch-size",
        type=int_in(1, MAX_BATCH_SIZE),
        default=128,
        help="global batch: under torchrun, split over the processes",
    )
    train.add_argument(
        "--lr-schedule",
        choices=("constant", "cosine"),
        help="learning rates over the budget: constant (default), or cosine from the model's rates down to 0 at "
        "the last step (needs --steps or --epochs)",
    )


def add_run_naming_options(train: argparse.ArgumentParser) -> None:
    """Where a run goes and its training seed(s): several seeds make a group of runs named RUN-s<SEED>."""
    train.add_argument(
        "--run",
        "--run-name",
        dest="run",
        type=run_name,
        help="run folder name (default MODEL-DATASET); under torchrun write --run-name",
    )
    train.add_argument("--out-dir", default="checkpoints")
    seeds = train.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=seed_int, default=0, help="0 .. 2**63-1")
    seeds.add_argument(
        "--seeds",
        type=seed_int,
        nargs="+",
        metavar="SEED",
        help=f"train the same recipe once per seed (at most {MAX_TRAINING_SEEDS}), into RUN-s<SEED> "
        "each: a training-seed group that evaluation and the dashboard show as mean ± std",
    )


def add_compute_options(train: argparse.ArgumentParser) -> None:
    """Where and how the steps compute: the device, the precision, torch.compile."""
    train.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    train.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "fp16"),
        help="how training steps compute (weights stay fp32): auto = bf16 where the CPU/GPU has it and the model "
        "was measured faster, fp16 on older CUDA GPUs, else fp32 (default fp32; --resume: the run's own)",
    )
    train.add_argument(
        "--compile",
        action="store_const",
        const=True,
        default=None,
        help="torch.compile the networks (a minute of compiling first; falls back when this machine cannot)",
    )


def add_sample_parser(sub) -> None:
    sample = sub.add_parser("sample", help="draw samples from a trained run into a .npy file")
    sample.add_argument("run_dir")
    sample.add_argument("--n", type=int_in(1, MAX_SAMPLES), required=True)
    sample.add_argument("--seed", type=seed_int, default=0, help="0 .. 2**63-1")
    sample.add_argument(
        "--sampler",
        choices=SAMPLERS,
        default="prior",
        help="prior = N(0, I); gmm / two-stage: fitted on the encoded train split (models with an encoder)",
    )
    sample.add_argument(
        "--label",
        type=int,
        metavar="K",
        help="class-conditional runs only: draw every image of class K (0..classes-1); without it the classes "
        "come in equal shares (0, 1, ..., K-1, 0, ...)",
    )
    sample.add_argument("--batch-size", type=int_in(1, MAX_SAMPLES), default=1000)
    sample.add_argument(
        "--out",
        required=True,
        help="FILE.npy: uint8 array (N, C, H, W), values 0..255; a class-conditional run also writes each "
        "image's class to FILE.labels.npy (int64, shape (N,))",
    )
    sample.add_argument("--force", action="store_true", help=FORCE_HELP)


def default_run_name(model: str, dataset: str) -> str:
    if dataset.startswith("folder:"):
        dataset = Path(dataset[len("folder:") :]).name or "folder"
    return f"{model}-{dataset}"


def progress_writer(path: Path):
    """A training callback that rewrites ``path`` (atomically) at most every half second."""
    from .checkpoints import atomic_write_bytes

    last = [0.0]

    def write(progress: dict) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.5 or progress.get("fraction", 0) >= 1:
            last[0] = now
            atomic_write_bytes(path, json.dumps(progress).encode())

    return write


def check_progress_file(path_text: str | None, run_dir: Path, overwrite: bool, force: bool = False) -> None:
    """``--progress-json`` must be a file name in an existing folder (or in the run folder about to be made), never
    a file of another run (``generators.outputs``), and not inside a run that ``--overwrite`` may keep (that would
    change the old run)."""
    if not path_text:
        return
    path = Path(path_text)
    check_outputs([Output("--progress-json", path, "json")], force=force, own_run=run_dir)
    inside_run = path.parent.resolve() == run_dir.resolve()
    if inside_run and overwrite and run_dir.is_dir():
        raise UserError("with --overwrite, put --progress-json outside the run folder (it would change the old run)")


@rank_zero_speaks
def cmd_train(args) -> int:
    """One run, or (``--seeds``) one run per seed named ``RUN-s<SEED>``, one after the other."""
    base = args.run or default_run_name(args.model, args.dataset)
    check_classes(args)
    if not args.seeds:
        check_name_bytes(base)
        return train_one(args, args.seed, Path(args.out_dir) / base)
    if len(set(args.seeds)) != len(args.seeds) or len(args.seeds) > MAX_TRAINING_SEEDS:
        shown = " ".join(map(str, args.seeds[:5])) + (" …" if len(args.seeds) > 5 else "")
        raise UserError(f"--seeds takes up to {MAX_TRAINING_SEEDS} distinct seeds, got {len(args.seeds)} ({shown})")
    if args.progress_json:
        raise UserError("--progress-json follows one run; give it without --seeds")
    names = [f"{base}-s{seed}" for seed in args.seeds]
    for name in names:  # every name checked before the first run trains
        check_name_bytes(name)
        if not (args.resume or args.overwrite) and (Path(args.out_dir) / name).exists():
            raise UserError(
                f"run folder {printable(str(Path(args.out_dir) / name))} already exists: pick another --run, or add "
                "--resume or --overwrite (nothing was trained)"
            )
    for seed, name in zip(args.seeds, names):
        code = train_one(args, seed, Path(args.out_dir) / name)
        if code:
            return code
    return 0


def folder_class_count(dataset: str) -> int | None:
    """The number of class sub-folders of a ``folder:`` dataset (counted without reading any image), else None."""
    if not dataset.startswith("folder:"):
        return None
    from .data import class_folders

    return len(class_folders(dataset[len("folder:") :]))


def check_classes(args) -> None:
    """A class-conditional model on a folder of thousands of classes is refused before anything is loaded or made:
    the CVAE's one-hot label planes grow with classes x H x W."""
    from .registry import model_class

    if "num_classes" not in {f.name for f in dataclasses.fields(model_class(args.model).Config)}:
        return
    classes = folder_class_count(args.dataset)
    if classes is None:
        return
    if classes > MAX_CLASSES:
        raise UserError(
            f"{args.model} is class-conditional and {args.dataset} has {classes} class folders; at most "
            f"{MAX_CLASSES} classes (train an unconditional model, or group the classes)"
        )
    side = args.image_size or 32
    if args.batch_size * classes * side * side > MAX_LABEL_PLANES:
        raise UserError(
            f"{args.model} with {classes} classes at {side}x{side} and --batch-size {args.batch_size} needs "
            f"{args.batch_size * classes * side * side * 4 / 1e9:.1f} GB for its label planes: lower --batch-size "
            "or --image-size"
        )


def train_settings(args, seed: int):
    """The model options and train config ``args`` ask for, checked (an option of another model is refused)."""
    from .registry import model_class
    from .training import TrainConfig

    cls = model_class(args.model)
    own_fields = {f.name for f in dataclasses.fields(cls.Config)}
    options = {name: getattr(args, name) for name in model_option_fields() if getattr(args, name) is not None}
    foreign = sorted(set(options) - own_fields)
    if foreign:
        raise UserError(f"--{foreign[0].replace('_', '-')} does not apply to {args.model}")
    cfg = TrainConfig(
        dataset=args.dataset,
        data_dir=args.data_dir,
        image_size=args.image_size,
        channels=args.channels,
        epochs=args.epochs,
        steps=args.steps,
        minutes=args.minutes,
        batch_size=args.batch_size,
        seed=seed,
        device=args.device,
        precision=args.precision,
        compile=args.compile,
        train_size=args.train_size,
        exclude_classes=args.exclude_classes,
        lr_schedule=args.lr_schedule,
    )
    return options, cfg


def train_one(args, seed: int, run_dir: Path) -> int:
    from .training import Diverged, Interrupted, run_training

    options, cfg = train_settings(args, seed)
    check_progress_file(args.progress_json, run_dir, args.overwrite, args.force)
    callback = progress_writer(Path(args.progress_json)) if args.progress_json else None
    try:
        with out_of_memory_hint("training", "lower --batch-size (or --image-size, or the model's widths)"):
            result = run_training(
                args.model,
                options,
                cfg,
                run_dir,
                resume=args.resume,
                overwrite=args.overwrite,
                callback=callback,
                show_progress=not args.quiet,
            )
    except Diverged as exc:
        kept = (
            f"{run_dir} was left as it was (the new run never reached a good checkpoint)"
            if getattr(exc, "kept_previous", False)
            else f"the last good checkpoint in {run_dir} was kept"
        )
        print(f"error: training diverged: {exc}; {kept} (try a lower learning rate)", file=sys.stderr)
        return EXIT_DIVERGED
    except Interrupted as exc:
        print(
            f"interrupted by {exc}: checkpoint saved in {printable(str(run_dir))}; continue with the same command plus "
            "--resume",
            file=sys.stderr,
        )
        return 128 + exc.signum
    print(
        f"trained {args.model} for {result['step']} steps ({result['epoch']} epochs, "
        f"{result['seconds']:.0f} s) -> {printable(str(run_dir))}"
    )
    return 0


class Stopped(Exception):
    """SIGTERM arrived while sampling (the dashboard's cancel); raised so the temp file is removed."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _stop(signum, _frame) -> None:
    raise Stopped(signum)


def labels_path(out: Path) -> Path:
    """Where ``sample`` writes the classes of a conditional run's images: F.npy -> F.labels.npy."""
    return out.with_suffix(".labels.npy")


def sample_labels(model, n: int, label: int | None):
    """The class of each of the ``n`` images to draw: None for an unconditional run (which refuses --label),
    all ``label``, or classes in equal shares."""
    classes = model.capabilities.num_classes
    if classes is None:
        if label is not None:
            raise UserError(f"--label needs a class-conditional run; this {model.name} run is not conditional")
        return None
    if label is not None and not 0 <= label < classes:
        raise UserError(f"--label must be between 0 and {classes - 1} (the run has {classes} classes), got {label}")
    return model.labels_for(n, label).cpu()


def cmd_sample(args) -> int:
    import numpy as np
    import torch

    from .checkpoints import load_run
    from .samplers import latent_sampler

    out = Path(args.out)
    if out.suffix != ".npy":
        raise UserError(f"--out must be a .npy file, got {out}")
    outputs = [Output("--out", out, "npy")]
    check_outputs(outputs, force=args.force)
    model, info = load_run(Path(args.run_dir))
    labels = sample_labels(model, args.n, args.label)
    if labels is not None:  # the classes go to FILE.labels.npy, checked the same way
        check_outputs([*outputs, Output("--out (its classes)", labels_path(out), "npy")], force=args.force)
    with out_of_memory_hint(f"fitting the {args.sampler} sampler", "use --sampler prior"):
        draw = latent_sampler(model, args.sampler, Path(args.run_dir))
    shape = (args.n, *model.config.image_shape)
    needed, free = int(np.prod(shape, dtype=np.float64)), shutil.disk_usage(out.parent).free
    if needed > free:
        raise UserError(
            f"{args.n} samples need {needed / 1e9:.1f} GB but {out.parent} has {free / 1e9:.1f} GB free; "
            f"ask for fewer with --n"
        )
    generator = torch.Generator().manual_seed(args.seed)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}.npy")
    previous = signal.signal(signal.SIGTERM, _stop) if threading.current_thread() is threading.main_thread() else None
    tmp_labels = out.with_name(f".{out.name}.labels.tmp-{os.getpid()}.npy")
    try:  # the .npy header, then batch after batch: 200 000 samples never sit in memory at once
        with open(tmp, "wb") as fh, out_of_memory_hint(f"sampling batches of {args.batch_size}", "lower --batch-size"):
            np.lib.format.write_array_header_1_0(fh, {"descr": "|u1", "fortran_order": False, "shape": shape})
            with torch.inference_mode():
                for start in range(0, args.n, args.batch_size):
                    count = min(args.batch_size, args.n - start)
                    z = draw(count, generator)
                    if labels is None:
                        images = model.decode(z)
                    else:
                        images = model.decode(z, labels[start : start + count].to(model.device))
                    fh.write(images.clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy().tobytes())
        if labels is not None:
            np.save(tmp_labels, labels.numpy().astype(np.int64))
            os.replace(tmp_labels, labels_path(out))
        os.replace(tmp, out)
    except Stopped as exc:
        print(f"interrupted by {exc}: nothing was written to {printable(str(out))}", file=sys.stderr)
        return 128 + exc.signum
    except OSError as exc:
        raise WriteFailed(exc.errno, f"could not write {out} ({exc.strerror or exc})") from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        for leftover in (tmp, tmp_labels):
            with contextlib.suppress(OSError):  # a folder that refused the file may refuse its removal too
                leftover.unlink(missing_ok=True)
    classes = "" if labels is None else f" and their classes to {printable(str(labels_path(out)))}"
    print(f"wrote {args.n} samples of {info['model']} ({args.sampler} sampler) to {printable(str(out))}{classes}")
    return 0


def cmd_list(args) -> int:
    from .checkpoints import list_runs

    runs, broken = list_runs(Path(args.out_dir))
    for run_dir, reason in broken:
        print(f"warning: skipped {printable(str(run_dir))}: {printable(reason)}", file=sys.stderr)
    if not runs:
        print(f"no runs in {args.out_dir}/ yet: train one with `{args.program} train vae`")
        return 0
    rows = [
        tuple(
            printable(cell)  # a name or dataset with a newline or an escape code cannot break the table
            for cell in (
                Path(r["run_dir"]).name,
                r["model"],
                r["dataset"],
                str(r.get("step", "?")),
                str(r.get("epoch", "?")),
                str(r.get("created", "?"))[:19].replace("T", " "),
            )
        )
        for r in runs
    ]
    header = ("run", "model", "dataset", "steps", "epochs", "created")
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0


def main(argv: list[str] | None = None, program: str = PROGRAM) -> int:
    """``program``: what the user typed for ``python -m generators`` (``genlab`` for ``genlab train``)."""

    def command() -> int:
        load_plugins()
        parser = build_parser(program)
        args, extra = parser.parse_known_args(argv)
        if args.command == "sweep":  # every other option is a train option, checked by the train parser
            return run_sweep(args, extra, sys.modules[__name__])
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return {"train": cmd_train, "sample": cmd_sample, "list": cmd_list}[args.command](args)

    return run_command(command)


if __name__ == "__main__":
    sys.exit(main())
