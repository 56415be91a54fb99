"""Sizes and names, small data and mismatched metadata, rows labelled by their folder, bounded reads, and smaller
command-line cases (RELIABILITY.md, section I)."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import pytest
from safetensors import safe_open
from safetensors.torch import load_file, save

import evaluation.__main__ as evaluation_cli
from evaluation import report, runner
from evaluation.store import settings_key, store_row, weights_sha256
from generators.checkpoints import MAX_WEIGHTS_BYTES, WEIGHTS, read_regular_file, read_run_info
from generators.data import clear_dataset_cache, load_run_dataset
from generators.errors import UserError
from generators.limits import MAX_CLASSES, MAX_RUN_NAME_BYTES
from generators.training import run_training
from generators.vae import VAE

from .support import TINY, assert_one_line_error, cli_in_process, make_image_folder, tiny_config, tiny_flags


def train_args(images, out_dir, *extra, model="ae"):
    return ["train", *tiny_flags(model if model != "cvae" else "vae")[1:], "--dataset", f"folder:{images}",
            "--steps", "2", "--out-dir", str(out_dir), *extra]  # fmt: skip


def train(capsys, model, images, out_dir, *extra):
    argv = train_args(images, out_dir, *extra, model=model)
    return cli_in_process(capsys, argv[0], model, *argv[1:])


# -- thousands of classes -------------------------------------------------------------------------------------------


def test_a_conditional_model_on_thousands_of_class_folders_is_refused_up_front(tmp_path, capsys):
    images = tmp_path / "faces"
    for i in range(MAX_CLASSES + 1):
        (images / f"id{i:05d}").mkdir(parents=True)
    runs = tmp_path / "runs"
    code, _, err = train(capsys, "cvae", images, runs)
    assert_one_line_error(code, err, f"{MAX_CLASSES + 1} class folders", f"at most {MAX_CLASSES}")
    assert not runs.exists()  # no step-0 run folder


def test_label_planes_too_large_for_one_batch_are_refused(tmp_path, capsys):
    images = tmp_path / "many"
    for i in range(600):
        (images / f"c{i:03d}").mkdir(parents=True)
    runs = tmp_path / "runs"
    code, _, err = train(capsys, "cvae", images, runs, "--image-size", "128", "--batch-size", "128")
    assert_one_line_error(code, err, "--batch-size", "--image-size")
    assert not runs.exists()


def test_an_unconditional_model_on_many_class_folders_is_not_bounded(tmp_path):
    from generators.__main__ import check_classes

    images = tmp_path / "many"
    for i in range(MAX_CLASSES + 1):
        (images / f"c{i:04d}").mkdir(parents=True)
    args = SimpleNamespace(model="vae", dataset=f"folder:{images}", image_size=32, batch_size=128)
    check_classes(args)  # no error: labels are not part of an unconditional model


# -- out of memory --------------------------------------------------------------------------------------------------

ALLOCATOR = RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried "
                         "to allocate 163840000000 bytes. Error code 12 (Cannot allocate memory)")  # fmt: skip


@pytest.mark.parametrize("error", [ALLOCATOR, MemoryError()], ids=["allocator", "MemoryError"])
def test_sampling_out_of_memory_says_which_option_to_lower(run, tmp_path, capsys, monkeypatch, error):
    def decode(self, z, labels=None):
        raise error

    monkeypatch.setattr(VAE, "decode", decode)
    out = tmp_path / "s.npy"
    argv = ["sample", str(run), "--n", "40000", "--batch-size", "40000", "--out", str(out)]
    code, _, err = cli_in_process(capsys, *argv)
    assert_one_line_error(code, err, "out of memory", "lower --batch-size")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no output, no temp file


def test_training_out_of_memory_says_which_option_to_lower(made, tmp_path, capsys, monkeypatch):
    def step(self, batch, optimizers):
        raise ALLOCATOR

    monkeypatch.setattr(VAE, "training_step", step)
    code, _, err = train(capsys, "vae", made[0], tmp_path / "runs")
    assert_one_line_error(code, err, "out of memory while training", "--batch-size")


def test_evaluation_out_of_memory_says_which_option_to_lower(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(runner, "check_inputs", lambda *a, **k: {"dataset": "mnist5k"})
    monkeypatch.setattr(runner, "evaluate_run", lambda *a, **k: (_ for _ in ()).throw(MemoryError()))
    capsys.readouterr()
    code = evaluation_cli.main([str(tmp_path / "r")])
    assert_one_line_error(code, capsys.readouterr().err, "out of memory", "--n")


def test_a_bug_that_is_not_memory_keeps_its_traceback(run, tmp_path, monkeypatch):
    monkeypatch.setattr(VAE, "decode", lambda self, z, labels=None: (_ for _ in ()).throw(RuntimeError("shape bug")))
    from generators.__main__ import main

    with pytest.raises(RuntimeError, match="shape bug"):
        main(["sample", str(run), "--n", "4", "--out", str(tmp_path / "s.npy")])


# -- name lengths in bytes ------------------------------------------------------------------------------------------


def test_a_long_cjk_run_name_is_refused_by_its_bytes(made, tmp_path, capsys):
    name = "字" * 100  # 100 characters, 300 bytes: "File name too long"
    code, _, err = train(capsys, "ae", made[0], tmp_path / "runs", "--run", name)
    assert_one_line_error(code, err, "bytes")
    assert not (tmp_path / "runs").exists()


def test_a_name_that_only_overflows_with_its_seed_suffix_is_refused_before_training(made, tmp_path, capsys):
    name = "a" * (MAX_RUN_NAME_BYTES - 3)  # fits alone; "-s12345" does not
    code, _, err = train(capsys, "ae", made[0], tmp_path / "runs", "--run", name, "--seeds", "1", "12345")
    assert_one_line_error(code, err, "bytes")
    assert not (tmp_path / "runs").exists()  # not even -s1 was trained


# -- sanity checks the split sizes like evaluation does -------------------------------------------------------------


def test_sanity_on_a_dataset_too_small_to_split_is_one_line(tmp_path, capsys):
    images = make_image_folder(tmp_path / "small", n=12, classes=3)  # 3 classes x 4 images
    capsys.readouterr()
    code = evaluation_cli.main(["sanity", "--dataset", f"folder:{images}", "--extractor-dir", str(tmp_path / "x")])
    assert_one_line_error(code, capsys.readouterr().err, "held-out", "needs at least")


# -- metadata that contradicts itself -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cvae_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cvae")
    images = make_image_folder(root / "images", n=60, classes=3)  # 20 a class: 2 held out each
    cvae = TINY["vae"]  # the conditional VAE takes the VAE's options
    run_training("cvae", cvae, tiny_config(images, steps=2), root / "run", show_progress=False)
    return images, root / "run"


def rewrite_info(run_dir: Path, change) -> None:
    path = run_dir / WEIGHTS
    with safe_open(str(path), framework="pt") as fh:
        info = json.loads(fh.metadata()["config"])
    change(info)
    path.write_bytes(save(load_file(str(path)), metadata={"config": json.dumps(info)}))


def copy_run(source: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(source, target)
    return target


def test_class_names_that_contradict_num_classes_are_refused(cvae_run, tmp_path):
    run = copy_run(cvae_run[1], tmp_path / "run")
    rewrite_info(run, lambda info: info.update(class_names=["a"]))
    with pytest.raises(UserError, match="num_classes=3"):
        read_run_info(run)


def test_num_classes_past_the_limit_is_refused(cvae_run, tmp_path):
    run = copy_run(cvae_run[1], tmp_path / "run")
    rewrite_info(run, lambda info: info["model_config"].update(num_classes=MAX_CLASSES + 1))
    with pytest.raises(UserError, match=str(MAX_CLASSES + 1)):
        read_run_info(run)


def test_class_folders_changed_after_training_are_refused(cvae_run, tmp_path):
    import shutil

    images = tmp_path / "images"
    shutil.copytree(cvae_run[0], images)
    run = copy_run(cvae_run[1], tmp_path / "run")
    rewrite_info(run, lambda info: info.update(dataset=f"folder:{images}"))
    clear_dataset_cache()
    assert load_run_dataset(read_run_info(run)).class_names == ["class0", "class1", "class2"]
    (images / "class0").rename(images / "class9")  # renamed: every label shifts
    clear_dataset_cache()
    with pytest.raises(UserError, match="class folders .* changed"):
        load_run_dataset(read_run_info(run))
    clear_dataset_cache()


# -- rows are labelled by the folder they were read from ------------------------------------------------------------


@pytest.fixture
def cached_row(cvae_run, tmp_path, monkeypatch):
    """A run with a stored row under the settings evaluate_run will ask for, and a fake extractor: so
    ``evaluate_run`` returns the stored row without scoring."""
    run = copy_run(cvae_run[1], tmp_path / "old-name")
    net = SimpleNamespace(id="fake-extractor", test_accuracy=None)
    monkeypatch.setattr(runner, "get_extractor", lambda *a, **k: net)
    settings = dict(n=20, seeds=[0], sampler="prior", iwae_k=2, inversion_steps=2, bootstrap=0)
    key = settings_key(extractor_id=net.id, **settings)
    store_row(run, key, {"run": "old-name", "run_dir": str(run), "weights_sha256": weights_sha256(run), "fid": 1.0})
    settings["seeds"] = (0,)
    return run, {**settings, "cache_dir": tmp_path / "ext"}


def test_a_renamed_run_is_labelled_by_its_new_name(cached_row, tmp_path):
    run, settings = cached_row
    renamed = run.rename(tmp_path / "new-name")
    row = runner.evaluate_run(renamed, **settings)
    assert row["fid"] == 1.0  # the cached row
    assert row["run"] == "new-name" and row["run_dir"] == str(renamed)


def test_evaluating_dot_from_inside_a_run_names_the_row(cached_row, monkeypatch):
    run, settings = cached_row
    monkeypatch.chdir(run)
    row = runner.evaluate_run(".", **settings)
    assert row["run"] == "old-name"


@pytest.fixture
def stub_evaluation(monkeypatch):
    monkeypatch.setattr(runner, "check_inputs", lambda *a, **k: {"dataset": "mnist5k"})
    monkeypatch.setattr(runner, "evaluate_run", lambda run_dir, **k: {"run": Path(run_dir).name, "fid": 1.0})
    monkeypatch.setattr(report, "to_text", lambda rows, width=None: "table")
    monkeypatch.setattr(report, "to_json", lambda rows: json.dumps(rows))


def test_a_run_and_its_copy_get_distinct_labels(stub_evaluation, tmp_path, capsys):
    (tmp_path / "a" / "r").mkdir(parents=True)
    (tmp_path / "b" / "r").mkdir(parents=True)
    out = tmp_path / "t.json"
    capsys.readouterr()
    assert evaluation_cli.main([str(tmp_path / "a" / "r"), str(tmp_path / "b" / "r"), "--json", str(out)]) == 0
    labels = [row["run"] for row in json.loads(out.read_text())]
    assert len(set(labels)) == 2, labels


def test_the_same_run_twice_is_scored_once(stub_evaluation, tmp_path, capsys):
    (tmp_path / "r").mkdir()
    out = tmp_path / "t.json"
    capsys.readouterr()
    assert evaluation_cli.main([str(tmp_path / "r"), str(tmp_path / "." / "r"), "--json", str(out)]) == 0
    assert len(json.loads(out.read_text())) == 1
    assert "given twice" in capsys.readouterr().err


# -- a bounded read never allocates its bound -----------------------------------------------------------------------


def test_reading_a_small_file_under_a_huge_bound_allocates_little(tmp_path):
    """`read(max_bytes + 1)` allocated the whole 2 GiB bound for an 11 KB file: a MemoryError under a memory
    limit (what a metrics.json or .lock link to /dev/zero seemed to cause, since each command then read weights)."""
    path = tmp_path / "small"
    path.write_bytes(b"x" * 10_000)
    tracemalloc.start()
    try:
        assert read_regular_file(path, MAX_WEIGHTS_BYTES) == b"x" * 10_000
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, peak


def test_a_bounded_read_still_reads_a_file_that_grew_up_to_the_bound(tmp_path, monkeypatch):
    path = tmp_path / "f"
    path.write_bytes(b"a" * 100)
    real_fstat = __import__("os").fstat
    monkeypatch.setattr("generators.checkpoints.os.fstat", lambda fd: SimpleNamespace(
        st_mode=real_fstat(fd).st_mode, st_size=10))  # fmt: skip  # the size when checked; it grew since
    assert read_regular_file(path, 1000) == b"a" * 100
    with pytest.raises(UserError, match="allowed"):
        read_regular_file(path, 50)


# -- smaller command-line cases -------------------------------------------------------------------------------------


def test_seeds_check_every_name_before_training_the_first(made, tmp_path, capsys):
    runs = tmp_path / "runs"
    (runs / "ae-x-s1").mkdir(parents=True)
    code, _, err = train(capsys, "ae", made[0], runs, "--run", "ae-x", "--seeds", "0", "1")
    assert_one_line_error(code, err, "ae-x-s1", "already exists")
    assert not (runs / "ae-x-s0").exists()


def test_an_error_about_many_seeds_is_short(made, tmp_path, capsys):
    seeds = [str(s) for s in range(1000)]
    code, _, err = train(capsys, "ae", made[0], tmp_path / "runs", "--seeds", *seeds)
    line = assert_one_line_error(code, err, "1000")
    assert len(line) < 200, line


@pytest.mark.parametrize(
    "argv",
    [
        ["sanity", "--extractor", "classifier"],  # was read as --extractor-dir
        ["r", "--extractor-d", "x"],
        ["r", "--json-", "x"],
    ],
)
def test_evaluation_options_are_never_abbreviated(argv, capsys):
    capsys.readouterr()
    code = evaluation_cli.main(argv)
    assert_one_line_error(code, capsys.readouterr().err, "unrecognized arguments")


def test_generators_options_are_never_abbreviated(made, tmp_path, capsys):
    code, _, err = train(capsys, "ae", made[0], tmp_path / "runs", "--run-n", "x")
    assert_one_line_error(code, err, "--run-n")


def test_escape_codes_in_output_names_are_not_echoed_raw(run, tmp_path, capsys):
    out = tmp_path / "s\x1b[2J.npy"
    code, stdout, err = cli_in_process(capsys, "sample", str(run), "--n", "4", "--out", str(out))
    assert code == 0, err
    assert "\x1b" not in stdout and "\\x1b" in stdout


def test_a_run_being_started_is_not_listed_as_broken(tmp_path, capsys):
    import os
    import socket

    from generators.checkpoints import LOCK, list_runs

    starting = tmp_path / "starting"
    starting.mkdir()
    (starting / LOCK).write_text(f"{os.getpid()}@{socket.gethostname()}")  # live lock, no checkpoint yet
    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / LOCK).write_text(f"999999999@{socket.gethostname()}")  # a dead starter: still reported
    runs, broken = list_runs(tmp_path)
    assert runs == [] and [p.name for p, _ in broken] == ["stale"]


def test_sanity_on_a_dataset_without_classes_suggests_no_option_it_lacks(tmp_path, capsys):
    images = make_image_folder(tmp_path / "flat", n=40)
    capsys.readouterr()
    code = evaluation_cli.main(["sanity", "--dataset", f"folder:{images}", "--extractor-dir", str(tmp_path / "x")])
    line = assert_one_line_error(code, capsys.readouterr().err, "sub-folder per class")
    assert "--extractor" not in line


def test_every_hash_and_metrics_read_goes_through_the_one_regular_file_reader(run, tmp_path):
    """Item 12: metrics.json and the weights hash (evaluation's cache, the samplers' refit check) are read by the
    same bounded, regular-file-only code as everything else: a FIFO or a /dev/zero link is never read."""
    import os
    import signal

    from evaluation.store import METRICS_FILE, load_metrics
    from generators.checkpoints import file_sha256
    from generators.samplers import weights_hash

    def hung(signum, frame):
        raise AssertionError("a reader blocked on a special file")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    try:
        (run / METRICS_FILE).symlink_to("/dev/zero")
        assert load_metrics(run) == {}
        (run / METRICS_FILE).unlink()
        os.mkfifo(run / METRICS_FILE)
        assert load_metrics(run) == {}
        assert weights_hash(run) == weights_sha256(run)[:16] == file_sha256(run / WEIGHTS)[:16]
        (run / WEIGHTS).unlink()
        os.mkfifo(run / WEIGHTS)
        assert weights_sha256(run) is None and weights_hash(run) is None
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
