"""torchrun with two CPU processes (gloo): every registered model trains and its run loads and samples in one
process; the ranks train on disjoint halves of every global batch; --resume continues exactly; where a step
depends on its batch alone, two processes give the weights of one process with the global batch; a NaN or an
exception in one rank, or Ctrl-C, stops both with one line and keeps the last good checkpoint.

A torchrun launch costs seconds of imports per process, so three launches serve every test: the first trains each
model (straight, and a first part to resume) and then injects the faults, through ``tests/ddp_driver.py`` (the
same ``python -m generators`` commands, in the same processes, recording what each rank trained on); the second
is the literal ``torchrun -m generators train`` stopped by Ctrl-C; the third resumes the runs of both.
Tiny nets on 12 grey 16x16 images; a global batch of 4 (2 per process) gives 2 steps per epoch, so 8 steps
cross 3 epoch boundaries and the first part (3 steps) stops mid-epoch.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.distributed.run import get_args_parser
from torch.utils.data.distributed import DistributedSampler

from generators.__main__ import EXIT_DIVERGED, build_parser
from generators.checkpoints import TEMP_MARK, load_run, read_history, read_run_info
from generators.data import load_dataset
from generators.distributed import Group, NetworksInDDP
from generators.errors import UserError
from generators.registry import MODELS, build_model
from generators.trainer import Trainer, epoch_batches
from generators.training import TrainConfig, run_training

from .ddp_driver import fingerprint
from .reliability.support import BATCH, STEPS_PER_EPOCH, TINY, make_image_folder, wait_for

ROOT = Path(__file__).resolve().parents[1]
STEPS, FIRST_PART = 8, 3
FAULT_STEP = 3  # in epoch 1: the checkpoint of epoch 0 (step 2) is the last good one
RANDOM_OPTIONS = {"ema": 0.9, "diffaug": "translation,cutout"}  # where a model has them: noise on every rank
FAULT_MODEL = next(iter(MODELS))


def options(name: str) -> dict:
    fields = {f.name for f in dataclasses.fields(MODELS[name].Config)}
    return {**TINY.get(name, {}), **{k: v for k, v in RANDOM_OPTIONS.items() if k in fields}}


def train_argv(name: str, images: Path, out_dir: Path, run: str, steps: int, *extra: str) -> list[str]:
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in options(name).items()]
    return [
        "train",
        name,
        *flags,
        *("--dataset", f"folder:{images}", "--image-size", "16", "--channels", "1"),
        *("--batch-size", str(BATCH), "--steps", str(steps), "--out-dir", str(out_dir), "--run-name", run),
        "--quiet",
        *extra,
    ]


def torchrun(*args: str, **popen) -> subprocess.Popen:
    """``torchrun --standalone --nproc_per_node 2 ARGS``, one thread per process, from the project folder."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen
    )


def drive(folder: Path, commands: list[dict]) -> dict:
    """Run ``commands`` through tests/ddp_driver.py in one torchrun launch; their exit codes per rank, the
    launch's output."""
    record = folder / "record"
    record.mkdir(parents=True)
    plan = folder / "plan.json"
    plan.write_text(json.dumps({"record_dir": str(record), "commands": commands}))
    out, err = torchrun(str(ROOT / "tests" / "ddp_driver.py"), str(plan)).communicate(timeout=600)
    codes = {p.name.removesuffix(".exit"): int(p.read_text()) for p in record.glob("*.exit")}
    return {"record": record, "codes": codes, "stdout": out, "stderr": err}


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error: ")]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("images"), classes=2)  # labelled: every model can train


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def first_launch(tmp_path_factory, images, out_dir) -> dict:
    """Each model straight to STEPS and to FIRST_PART; then a SIGTERM, a NaN, and an exception, in rank 1 at
    FAULT_STEP (the exception ends the launch)."""
    commands = []
    for name in MODELS:
        for run, steps in ((f"{name}-straight", STEPS), (f"{name}-first", FIRST_PART)):
            commands.append({"tag": run, "argv": train_argv(name, images, out_dir, run, steps)})
    for kind in ("sigterm", "nan", "raise"):
        fault = {"kind": kind, "rank": 1, "step": FAULT_STEP}
        commands.append({"tag": kind, "argv": train_argv(FAULT_MODEL, images, out_dir, kind, STEPS), "fault": fault})
    return drive(tmp_path_factory.mktemp("first"), commands)


@pytest.fixture(scope="module")
def ctrl_c_launch(images, out_dir, first_launch) -> dict:
    """The literal command, stopped by Ctrl-C (SIGINT to torchrun and both processes) once training runs."""
    progress = out_dir / "progress.json"
    argv = train_argv(FAULT_MODEL, images, out_dir, "ctrl-c", 100_000, "--progress-json", str(progress))
    launch = torchrun("-m", "generators", *argv, start_new_session=True)
    wait_for(progress, launch)
    os.killpg(launch.pid, signal.SIGINT)
    out, err = launch.communicate(timeout=300)
    return {"returncode": launch.returncode, "stdout": out, "stderr": err}


@pytest.fixture(scope="module")
def resume_launch(tmp_path_factory, images, out_dir, first_launch, ctrl_c_launch) -> dict:
    """In fresh processes: each model's first part resumed to STEPS; the Ctrl-C run resumed for 2 more steps;
    the SIGTERM run resumed to STEPS; then a command that rank 0 refuses (a new run into a folder with one)."""
    commands = [
        {"tag": f"{name}-resumed", "argv": train_argv(name, images, out_dir, f"{name}-first", STEPS, "--resume")}
        for name in MODELS
    ]
    stopped_at = read_run_info(out_dir / "ctrl-c")["step"]
    argv = train_argv(FAULT_MODEL, images, out_dir, "ctrl-c", stopped_at + 2, "--resume")
    commands.append({"tag": "ctrl-c-resumed", "argv": argv})
    argv = train_argv(FAULT_MODEL, images, out_dir, "sigterm", STEPS, "--resume")
    commands.append({"tag": "sigterm-resumed", "argv": argv})
    commands.append({"tag": "exists", "argv": train_argv(FAULT_MODEL, images, out_dir, "ctrl-c", STEPS)})
    sigterm_at = read_run_info(out_dir / "sigterm")["step"]
    return {**drive(tmp_path_factory.mktemp("resume"), commands), "stopped_at": stopped_at, "sigterm_at": sigterm_at}


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_run(run_dir)[0].state_dict()


# -- every model under torchrun ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_trains_under_torchrun_and_samples_in_one_process(first_launch, out_dir, name):
    codes = first_launch["codes"]
    assert [codes[f"{name}-{part}.rank{r}"] for part in ("straight", "first") for r in (0, 1)] == [0] * 4
    assert first_launch["stdout"].count(f"trained {name} for {STEPS} steps") == 1  # rank 0 speaks, rank 1 not
    info = read_run_info(out_dir / f"{name}-straight")
    assert (info["step"], info["epoch"], info["world_size"]) == (STEPS, STEPS // STEPS_PER_EPOCH, 2)
    model, _ = load_run(out_dir / f"{name}-straight")  # this process has no process group: one process
    images = model.sample(6, generator=torch.Generator().manual_seed(0))
    assert images.shape == (6, 1, 16, 16) and images.isfinite().all() and 0 <= images.min() <= images.max() <= 1
    assert len(read_history(out_dir / f"{name}-straight")) == STEPS


@pytest.mark.parametrize("name", list(MODELS))
def test_the_ranks_train_on_disjoint_halves_of_every_global_batch(first_launch, images, name):
    """Rank 0's and rank 1's k-th batches are disjoint and together are the k-th batch one process would take
    (a per-epoch shuffle, every image at most once per epoch)."""
    data = load_dataset(f"folder:{images}", image_size=16, channels=1)
    seen = [
        [json.loads(line) for line in (first_launch["record"] / f"{name}-straight.rank{r}.jsonl").open()]
        for r in (0, 1)
    ]
    assert len(seen[0]) == len(seen[1]) == STEPS
    one_process = [
        batch for epoch in range(STEPS // STEPS_PER_EPOCH) for batch in epoch_batches(len(data.train), BATCH, 0, epoch)
    ]
    for step, (mine, theirs, whole) in enumerate(zip(*seen, one_process)):
        assert len(mine) == len(theirs) == BATCH // 2
        assert not set(mine) & set(theirs), f"step {step + 1}: both ranks trained on the same image"
        assert set(mine) | set(theirs) == {fingerprint(data.train[[i]][0][0]) for i in whole}, f"step {step + 1}"
    epochs = [sorted(map(sorted, one_process[e : e + STEPS_PER_EPOCH])) for e in range(0, STEPS, STEPS_PER_EPOCH)]
    assert len({json.dumps(e) for e in epochs}) > 1  # each epoch has its own shuffle


@pytest.mark.parametrize("name", list(MODELS))
def test_resume_under_torchrun_continues_exactly(resume_launch, out_dir, name):
    """FIRST_PART steps, then --resume in new processes to STEPS == STEPS straight: weights and losses."""
    assert resume_launch["codes"][f"{name}-resumed.rank0"] == resume_launch["codes"][f"{name}-resumed.rank1"] == 0
    straight, resumed = weights(out_dir / f"{name}-straight"), weights(out_dir / f"{name}-first")
    assert straight.keys() == resumed.keys()
    for key, value in straight.items():
        assert torch.equal(value, resumed[key]), key
    drop_time = lambda run: [{k: v for k, v in row.items() if k != "seconds"} for row in read_history(run)]  # noqa: E731
    assert drop_time(out_dir / f"{name}-straight") == drop_time(out_dir / f"{name}-first")


def depends_on_its_batch_alone(name: str) -> bool:
    """No BatchNorm (statistics over each process's share) and no noise drawn in a step (each process draws
    its own): then the mean of the per-process gradients is the gradient of the global batch."""
    model = build_model(name, {**options(name), "image_shape": (1, 16, 16)})
    if any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return False
    batch = (torch.rand(BATCH, 1, 16, 16), torch.zeros(BATCH))
    rng = torch.get_rng_state()
    model.training_step(batch, model.configure_optimizers(None))
    return torch.equal(rng, torch.get_rng_state())


def train_one_process(name: str, images: Path, run_dir: Path, steps: int, resume: bool = False) -> None:
    cfg = TrainConfig(dataset=f"folder:{images}", image_size=16, channels=1, batch_size=BATCH, steps=steps)
    run_training(name, options(name), cfg, run_dir, resume=resume, show_progress=False)


def assert_same_weights_up_to_rounding(name: str, one: Path, two: Path) -> None:
    """Adam moves each weight by at most about lr per step, whatever the gradient's size: float rounding in the
    summed gradients changes a weight by a small fraction of lr (1e-3 lr here; seen: ~1e-5 lr), never by a step."""
    lr = MODELS[name].Config.from_dict({**options(name), "image_shape": (1, 16, 16)}).lr
    a, b = weights(one), weights(two)
    for key, value in a.items():
        assert torch.allclose(value, b[key], rtol=0, atol=1e-3 * lr), (key, (value - b[key]).abs().max())


@pytest.mark.parametrize("name", list(MODELS))
def test_two_processes_follow_one_process_with_the_global_batch(first_launch, images, out_dir, tmp_path, name):
    """2 processes x 2 images == 1 process x 4 images, step by step, up to float rounding: the gradients of the
    two halves are averaged, and the same images make each global batch. Models whose step draws noise or uses
    BatchNorm follow it only in distribution (their noise and batch statistics differ per process)."""
    if not depends_on_its_batch_alone(name):
        pytest.skip(f"{name}: a step draws noise or normalises over the batch, so equal weights are not expected")
    train_one_process(name, images, tmp_path / "one", STEPS)
    assert_same_weights_up_to_rounding(name, tmp_path / "one", out_dir / f"{name}-straight")
    losses = lambda run: [row["loss"] for row in read_history(run)]  # noqa: E731
    assert losses(tmp_path / "one") == pytest.approx(losses(out_dir / f"{name}-straight"), rel=1e-5)


@pytest.mark.parametrize("name", list(MODELS))
def test_a_two_process_run_continues_in_one_process(first_launch, images, out_dir, tmp_path, name):
    """--resume with another number of processes: the same global batches in the same order (new noise
    streams), so where a step depends on its batch alone it ends where one process all along would."""
    shutil.copytree(out_dir / f"{name}-straight", tmp_path / "moved")
    more = STEPS + 2 * STEPS_PER_EPOCH
    train_one_process(name, images, tmp_path / "moved", more, resume=True)
    info = read_run_info(tmp_path / "moved")
    assert (info["step"], info["world_size"]) == (more, 1)
    if depends_on_its_batch_alone(name):
        train_one_process(name, images, tmp_path / "one", more)
        assert_same_weights_up_to_rounding(name, tmp_path / "one", tmp_path / "moved")


# -- faults ------------------------------------------------------------------------------------------------
def assert_last_good_checkpoint_kept(run_dir: Path) -> None:
    info = read_run_info(run_dir)
    assert (info["step"], info["epoch"]) == (STEPS_PER_EPOCH, 1)  # the checkpoint before the fault
    assert all(v.isfinite().all() for v in weights(run_dir).values())
    assert not [p for p in run_dir.iterdir() if TEMP_MARK in p.name or p.name == ".lock"]


def test_a_nan_in_one_rank_stops_both_with_one_line(first_launch, out_dir):
    codes = first_launch["codes"]
    assert codes["nan.rank0"] == codes["nan.rank1"] == EXIT_DIVERGED
    lines = [line for line in error_lines(first_launch["stderr"]) if "diverged" in line]
    assert len(lines) == 1 and f"at step {FAULT_STEP}" in lines[0] and str(out_dir / "nan") in lines[0], lines
    assert_last_good_checkpoint_kept(out_dir / "nan")


def test_an_exception_in_one_rank_stops_both_with_one_line(first_launch, out_dir):
    """Rank 1's bug keeps its traceback; rank 0, whose collective broke, says so in one line and exits."""
    stderr = first_launch["stderr"]
    assert first_launch["codes"]["raise.rank0"] == 2 and "raise.rank1" not in first_launch["codes"]
    assert "RuntimeError: injected fault" in stderr and "[rank0]: Traceback" not in stderr
    lines = [line for line in error_lines(stderr) if "another process" in line]
    assert len(lines) == 1 and str(out_dir / "raise") in lines[0] and "--resume" in lines[0], lines
    assert_last_good_checkpoint_kept(out_dir / "raise")


def test_sigterm_to_one_rank_stops_both_at_the_same_step_and_resumes_exactly(first_launch, resume_launch, out_dir):
    """Rank 1 alone gets SIGTERM at FAULT_STEP: both stop after that step (rank 0 saves it) and exit 143 with
    one line; resumed in new processes, the run ends with the weights of the uninterrupted one."""
    codes = first_launch["codes"]
    assert codes["sigterm.rank0"] == codes["sigterm.rank1"] == 128 + signal.SIGTERM
    lines = [line for line in first_launch["stderr"].splitlines() if line.startswith("interrupted by SIGTERM")]
    assert len(lines) == 1 and str(out_dir / "sigterm") in lines[0], lines
    assert resume_launch["sigterm_at"] == FAULT_STEP
    assert resume_launch["codes"]["sigterm-resumed.rank0"] == 0
    straight, resumed = weights(out_dir / f"{FAULT_MODEL}-straight"), weights(out_dir / "sigterm")
    assert all(torch.equal(value, resumed[key]) for key, value in straight.items())


def test_ctrl_c_under_torchrun_saves_a_checkpoint_and_resumes(ctrl_c_launch, resume_launch, out_dir):
    assert ctrl_c_launch["returncode"] != 0
    lines = [line for line in ctrl_c_launch["stderr"].splitlines() if line.startswith("interrupted by")]
    assert len(lines) == 1 and lines[0].startswith("interrupted by SIGINT: checkpoint saved"), ctrl_c_launch["stderr"]
    assert "[rank0]: Traceback" not in ctrl_c_launch["stderr"] and "[rank1]: Traceback" not in ctrl_c_launch["stderr"]
    stopped_at = resume_launch["stopped_at"]
    assert stopped_at >= 1
    assert resume_launch["codes"]["ctrl-c-resumed.rank0"] == 0
    assert read_run_info(out_dir / "ctrl-c")["step"] == stopped_at + 2
    assert [row["step"] for row in read_history(out_dir / "ctrl-c")] == list(range(1, stopped_at + 3))


def test_a_command_refused_under_torchrun_says_so_once(resume_launch, out_dir):
    """Rank 0 alone checks the run folder; rank 1 learns of the refusal, stops quietly, and both exit 2."""
    assert resume_launch["codes"]["exists.rank0"] == resume_launch["codes"]["exists.rank1"] == 2
    lines = error_lines(resume_launch["stderr"])
    assert len(lines) == 1 and "already exists" in lines[0] and str(out_dir / "ctrl-c") in lines[0], lines


# -- in one process --------------------------------------------------------------------------------------
def test_torchrun_passes_run_name_to_the_command_but_takes_run_for_itself():
    """torchrun's parser reads --run as an abbreviation of its --run-path: --run-name is the spelling for both."""
    launcher = get_args_parser()
    ours = ["train", "ae", "--run-name", "r"]
    assert launcher.parse_args(["--nproc_per_node", "2", "-m", "generators", *ours]).training_script_args == ours
    with pytest.raises(SystemExit):
        launcher.parse_args(["--nproc_per_node", "2", "-m", "generators", "train", "ae", "--run", "r"])
    assert build_parser().parse_args(ours).run == build_parser().parse_args(["train", "ae", "--run", "r"]).run == "r"


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_epoch_batches_partition_each_global_batch_over_the_ranks(world_size):
    batch = 3 * world_size
    whole = epoch_batches(50, batch, seed=1, epoch=2)
    shards = [epoch_batches(50, batch, 1, 2, rank=r, world_size=world_size) for r in range(world_size)]
    assert all(len(s) == len(whole) == 50 // batch for s in shards)  # every rank takes the same number of steps
    for k, global_batch in enumerate(whole):
        parts = [set(s[k]) for s in shards]
        assert sum(map(len, parts)) == batch and set().union(*parts) == set(global_batch)
    assert epoch_batches(50, batch, 1, 2, skip=1, rank=world_size - 1, world_size=world_size) == shards[-1][1:]
    flat = [i for b in whole for i in b]  # each rank's images are DistributedSampler's pick from the global order
    for rank, shard in enumerate(shards):
        picked = DistributedSampler(flat, num_replicas=world_size, rank=rank, shuffle=False)
        assert [flat[i] for i in picked] == [i for b in shard for i in b]


def test_batch_size_must_split_evenly_over_the_processes(tmp_path, images):
    data = load_dataset(f"folder:{images}", image_size=16, channels=1)
    model = build_model(FAULT_MODEL, {**options(FAULT_MODEL), "image_shape": data.image_shape})
    cfg = TrainConfig(batch_size=5, steps=1)
    with pytest.raises(UserError, match="global batch and must split evenly over the 2 processes"):
        Trainer(model, data, cfg, tmp_path, {}, group=Group(rank=0, world_size=2))
    assert Trainer(model, data, TrainConfig(batch_size=6), tmp_path, {}, group=Group(0, 2)).steps_per_epoch == 1
    assert Trainer(model, data, cfg, tmp_path, {}).batch_size == 5  # one process: any batch size


def test_weights_outside_the_child_networks_are_refused_before_any_process_waits():
    """DDP averages the gradients of the networks it wraps; a weight on the model itself would drift apart."""
    model = torch.nn.Module()
    model.net = torch.nn.Linear(2, 2)
    model.scale = torch.nn.Parameter(torch.ones(1))
    with pytest.raises(UserError, match="outside its child networks"):
        with NetworksInDDP(model, Group(rank=0, world_size=2), torch.device("cpu")):
            pass
    assert isinstance(model.net, torch.nn.Linear)  # nothing was wrapped
