"""Conditional scores of a run (label accuracy, CAS + ceiling, intra-class FID + floor) into
<run>/conditional_metrics.json, keyed by their settings — until ``python -m evaluation`` stores them in
metrics.json. Usage: python scripts/score_conditional.py RUN_DIR [--n 5000] [--seed 0] [--sampler prior]"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation.conditional import conditional_scores  # noqa: E402
from evaluation.features import DEFAULT_CACHE_DIR, get_extractor  # noqa: E402
from generators.checkpoints import atomic_write_bytes, load_run  # noqa: E402
from generators.cli import OneLineParser, positive_int  # noqa: E402
from generators.data import load_run_dataset  # noqa: E402
from generators.errors import UserError, run_command  # noqa: E402
from generators.samplers import SAMPLERS, latent_sampler  # noqa: E402

SCORES_FILE = "conditional_metrics.json"


def score(args) -> int:
    run_dir = Path(args.run_dir)
    model, info = load_run(run_dir)
    if not model.capabilities.conditional:
        raise UserError(f"{run_dir} is not a class-conditional run")
    data = load_run_dataset(info)
    net = get_extractor(info["dataset"], data.image_shape, cache_dir=args.extractor_dir, data=data)
    started = time.perf_counter()
    row = conditional_scores(model, data, net, latent_sampler(model, args.sampler, run_dir), n=args.n, seed=args.seed)
    row.update(
        sampler=args.sampler,
        seed=args.seed,
        extractor_id=net.id,
        run_step=info.get("step"),
        seconds=round(time.perf_counter() - started, 1),
    )
    path = run_dir / SCORES_FILE
    stored = json.loads(path.read_text()) if path.is_file() else {}
    stored[f"n={args.n}|seed={args.seed}|sampler={args.sampler}|extractor={net.id}"] = row
    atomic_write_bytes(path, json.dumps(stored, indent=1).encode())
    print(json.dumps(row))
    return 0


def main() -> int:
    parser = OneLineParser(prog="scripts/score_conditional.py", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--n", type=positive_int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sampler", choices=SAMPLERS, default="prior")
    parser.add_argument("--extractor-dir", default=DEFAULT_CACHE_DIR)
    return run_command(lambda: score(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
