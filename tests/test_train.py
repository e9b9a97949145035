"""bcdet_helpers.train: determinism, resume, Ctrl-C, optimizer switching, best-by-validation, run folders.

Everything runs on small random tensors with a tiny ResNet9 (16 x 16 px, width 4), so the file
takes seconds; the real data path is exercised by notebook 04 under the smoke profile.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import bcdet_helpers.data as bdata
from bcdet_helpers import runs as runs_module
from bcdet_helpers import train
from bcdet_helpers.callbacks import Callback
from bcdet_helpers.checkpoints import load_checkpoint
from bcdet_helpers.research.commands import cli_train
from bcdet_helpers.data import SplitData
from bcdet_helpers.device import choose_device
from bcdet_helpers.errors import BcdetError
from bcdet_helpers.metrics import macro_f1_from_confusion
from bcdet_helpers.model import ResNet9
from bcdet_helpers.profiles import Phase, get_profile

HAS_AUGMENT = importlib.util.find_spec("bcdet_helpers.data.augment") is not None
SIZE, WIDTH = 16, 4


def fake_data(n_train=40, n_val=20, n_test=6, seed=0) -> SplitData:
    """Class-dependent brightness plus noise: learnable, but not in two epochs."""
    g = torch.Generator().manual_seed(seed)
    n = n_train + n_val + n_test
    labels = torch.arange(n) % 3
    base = (60 + 50 * labels).view(n, 1, 1, 1).float()
    images = (base + 60 * torch.randn(n, 1, SIZE, SIZE, generator=g)).clamp(0, 255).to(torch.uint8)
    split = np.array(["train"] * n_train + ["val"] * n_val + ["test"] * n_test)
    mean, std = SplitData.train_stats(images, split)
    return SplitData(images=images, labels=labels, files=[f"img{i}.png" for i in range(n)], parts=split,
                     mean=mean, std=std)


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return ResNet9(in_channels=1, num_classes=3, width=WIDTH)


PHASES = [Phase("adam", 3e-3, 2), Phase("sgd", 2e-2, 2, scheduler="onecycle")]


def run(tmp_path=None, name="run", phases=PHASES, seed=0, model_seed=0, **kw):
    kw.setdefault("progress", False)
    return train.fit(tiny_model(model_seed), fake_data(), phases, batch_size=16, seed=seed, device="cpu",
                     augment=HAS_AUGMENT, run_dir=None if tmp_path is None else tmp_path / name, **kw)


def without_seconds(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns="seconds").reset_index(drop=True)


def assert_same_state(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_same_seed_gives_identical_history_and_weights():
    a, b = run(phases=PHASES[:1]), run(phases=PHASES[:1])
    assert len(a.history) == 2
    pd.testing.assert_frame_equal(without_seconds(a.history), without_seconds(b.history))
    assert_same_state(a.best_state, b.best_state)
    c = run(phases=PHASES[:1], seed=1)  # batch order (and augmentation) follow the seed
    assert not without_seconds(a.history).equals(without_seconds(c.history))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("full")
    model = tiny_model()
    res = train.fit(model, fake_data(), PHASES, batch_size=16, seed=0, device="cpu", augment=HAS_AUGMENT,
                    run_dir=tmp / "run", progress=False)
    return res, {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("how, k", [("stop_after", 1),  # inside the Adam phase
                                     ("keyboard_interrupt", 3)])  # inside the one-cycle SGD phase
def test_resume_after_interrupt_gives_the_same_final_weights(tmp_path, uninterrupted, how, k):
    full, full_weights = uninterrupted
    if how == "stop_after":
        part = run(tmp_path, stop_after=k)
    else:
        class CtrlC(Callback):  # Ctrl-C right after epoch k is checkpointed
            def after_epoch(self, loop, row):
                if row["epoch"] == k:
                    raise KeyboardInterrupt
        part = run(tmp_path, callbacks=[CtrlC()])
    assert part.interrupted and len(part.history) == k
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert ck["epoch"] == k

    model = tiny_model(seed=123)  # a different init: everything must come from the checkpoint
    rest = train.fit(model, fake_data(), PHASES, batch_size=16, seed=0, device="cpu", augment=HAS_AUGMENT,
                     run_dir=tmp_path / "run", resume=True, progress=False)
    assert not rest.interrupted
    assert_same_state(model.state_dict(), full_weights)
    assert_same_state(rest.best_state, full.best_state)
    assert rest.best_epoch == full.best_epoch
    pd.testing.assert_frame_equal(without_seconds(rest.history), without_seconds(full.history))


def test_ctrl_c_mid_epoch_keeps_last_finished_epoch(tmp_path):
    calls = {"n": 0}
    real = train.validate

    def flaky_evaluate(*a, **kw):  # Ctrl-C during epoch 2's validation
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*a, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train, "validate", flaky_evaluate)
        res = run(tmp_path)
    assert res.interrupted
    assert list(res.history["epoch"]) == [1]
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["epoch"] == 1


def test_phase_boundaries_switch_the_optimizer(uninterrupted, monkeypatch):
    made = []
    real = train.make_optimizer
    monkeypatch.setattr(train, "make_optimizer", lambda p, m: made.append(real(p, m)) or made[-1])
    res = run()
    assert [type(o).__name__ for o in made] == ["Adam", "SGD"]
    h = res.history
    assert list(h["optimizer"]) == ["adam", "adam", "sgd", "sgd"]
    assert list(h["phase"]) == [0, 0, 1, 1]
    assert (h["lr"][:2] == 3e-3).all()
    assert h["lr"].iloc[-1] < 1e-4  # one-cycle anneals to a tiny rate by the end of its phase


def test_best_weights_are_the_best_validation_epoch(uninterrupted):
    res, _ = uninterrupted
    h = res.history
    top = h[h["val_f1"] == h["val_f1"].max()]
    assert res.best_epoch == int(top.loc[top["val_loss"].idxmin(), "epoch"])
    # the kept weights reproduce that epoch's validation numbers
    data = fake_data()
    model = tiny_model()
    model.load_state_dict(res.best_state)
    from bcdet_helpers.batches import Batches, Precision

    cpu = torch.device("cpu")
    val = train.validate(model, Batches(data, 16, 0, cpu, False), Precision(cpu))
    row = h.set_index("epoch").loc[res.best_epoch]
    assert val["val_loss"] == pytest.approx(row["val_loss"], rel=1e-5)
    assert val["val_f1"] == pytest.approx(row["val_f1"])


def test_macro_f1_matches_scikit_learn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    for _ in range(5):
        yt, yp = rng.integers(0, 3, 30), rng.integers(0, 2, 30)  # class 2 never predicted
        conf = torch.bincount(torch.tensor(yt * 3 + yp), minlength=9).view(3, 3)
        assert macro_f1_from_confusion(conf.numpy()) == pytest.approx(f1_score(yt, yp, average="macro", labels=[0, 1, 2],
                                                                zero_division=0))


def test_choose_device():
    assert choose_device("cpu").type == "cpu"
    assert choose_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(BcdetError, match="Unknown device"):
        choose_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(BcdetError, match="--device cpu"):
            choose_device("cuda")


_ALLOCATOR_PROBE = """
import hashlib, json, resource, sys
import torch
sys.path.insert(0, sys.argv[1])
from bcdet_helpers import device
device.KEEP_FREED_MEMORY = sys.argv[2] == "keep"
from test_train import PHASES, run
res = run(phases=PHASES[:1])  # fit keeps freed memory on a CPU unless told not to
for _ in range(2):  # the heap grows to its peak once: those first faults are paid in both ways
    x = torch.ones(16 * 2**20)
    del x
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    x = torch.ones(16 * 2**20)  # 64 MB, the size of a width-16 activation at batch 128
    del x
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
weights = hashlib.sha256(b"".join(v.numpy().tobytes() for v in res.best_state.values())).hexdigest()
print(json.dumps({"history": res.history.drop(columns="seconds").to_dict("list"), "weights": weights,
                  "faults": faults}))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="keep_freed_memory needs glibc")
def test_keeping_freed_memory_stops_page_faults_and_changes_no_number():
    """issue #17: on a CPU, fit asks glibc to reuse freed memory instead of re-faulting it every
    step; the same run gives the same history and weights either way."""
    out = {}
    for way in ("keep", "return"):
        proc = subprocess.run([sys.executable, "-c", _ALLOCATOR_PROBE, str(Path(__file__).parent), way],
                              capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[1])
        assert proc.returncode == 0, proc.stderr[-2000:]
        out[way] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["keep"]["history"] == out["return"]["history"]
    assert out["keep"]["weights"] == out["return"]["weights"]
    assert out["return"]["faults"] > 10 * 16384 * 0.9  # every 64 MB block faulted in afresh
    assert out["keep"]["faults"] < out["return"]["faults"] / 10


_ORPHAN_PROBE = """
import multiprocessing as mp, os, signal, sys, time
from pathlib import Path
from bcdet_helpers.research.workers import start_worker

def train_for_minutes(flag):
    Path(flag).write_text(str(os.getpid()))
    time.sleep(120)

if __name__ == "__main__":
    flag = Path(sys.argv[1])
    pool = mp.get_context("spawn").Pool(1, initializer=start_worker, initargs=(1,))
    pool.map_async(train_for_minutes, [str(flag)])
    while not flag.exists() or not flag.read_text():
        time.sleep(0.05)
    os.kill(os.getpid(), signal.SIGKILL)  # killed while its worker "trains": no cleanup, no pool.terminate()
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\tZ" not in state.split("State:")[1].splitlines()[0]  # a zombie has ended


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_killed_studys_workers_do_not_train_on_as_orphans(tmp_path):
    """A study's worker ends with its parent: a study killed and started again must not have two
    processes training the same run folder (research.workers.die_with_parent)."""
    import time

    script, flag = tmp_path / "probe.py", tmp_path / "busy"
    script.write_text(_ORPHAN_PROBE)
    with open(tmp_path / "log.txt", "w") as log:  # not a pipe: an orphan would hold it open
        proc = subprocess.run([sys.executable, str(script), str(flag)], stdout=log, stderr=log, timeout=120,
                              cwd=Path(__file__).parents[1])
    assert proc.returncode == -9, (tmp_path / "log.txt").read_text()[-2000:]
    worker = int(flag.read_text())
    deadline = time.time() + 20
    while _alive(worker) and time.time() < deadline:
        time.sleep(0.2)
    if _alive(worker):
        os.kill(worker, 9)
        pytest.fail("the worker outlived its killed parent")


def test_phase_table_lists_every_phase():
    t = train.phase_table(["constant", "switching"], epochs=50)
    assert list(t.groupby("schedule", sort=False).size()) == [1, 4]
    assert set(t["optimizer"]) == {"Adam", "SGD + momentum"}


# ------------------------------------------------------------------------- train_run / run folders
@pytest.fixture
def runs(tmp_path, monkeypatch):
    """train_run on fake data: the real loader is replaced (its own tests cover it)."""
    monkeypatch.setenv("BCDET_RUNS", str(tmp_path / "runs"))
    monkeypatch.setattr(bdata, "load_split_data", lambda profile, kind="grouped", seed=0, root=None, fold=0: fake_data(),
                        raising=False)
    return get_profile("smoke", image_size=SIZE, width=WIDTH, batch_size=16, epochs=3, augment=HAS_AUGMENT)


def test_train_run_writes_its_folder_and_is_loaded_not_retrained(runs, monkeypatch, capsys):
    res = runs_module.train_run(runs, "switching", seed=0, device="cpu", progress=False)
    d = runs_module.run_dir_for("smoke", "switching", "grouped", seed=0)
    assert res.run_dir == d
    for f in ("config.json", "history.csv", "checkpoint.pt", "best.pt", "result.json"):
        assert (d / f).exists(), f
    info = json.loads((d / "result.json").read_text())
    assert info["best_epoch"] == res.best_epoch and "environment" in info
    started = json.loads((d / "config.json").read_text())["started"]  # the commit the run began from
    assert set(started) == {"git_commit", "at"} and started["at"] <= info["environment"]["recorded_at"]
    assert list(res.history["optimizer"]) == ["adam", "sgd", "adam"]

    def no_training(*a, **kw):
        raise AssertionError("a finished run must be loaded, not retrained")

    monkeypatch.setattr(train, "fit", no_training)
    again = runs_module.train_run(runs, "switching", seed=0, device="cpu", progress=False)
    assert again.best_epoch == res.best_epoch
    assert_same_state(again.best_state, res.best_state)
    pd.testing.assert_frame_equal(without_seconds(again.history), without_seconds(res.history), check_dtype=False)

    model, meta = load_checkpoint(d / "best.pt")
    assert meta["image_size"] == SIZE and meta["classes"] == ("benign", "malignant", "normal")
    assert_same_state(model.state_dict(), res.best_state)

    with pytest.raises(BcdetError, match="different settings"):  # same folder, other epochs
        runs_module.train_run(runs, "switching", seed=0, epochs=5, device="cpu", progress=False)

    # a study-level field (bootstrap, teach_*, seeds) changing later does not orphan finished runs
    cfg = json.loads((d / "config.json").read_text())
    cfg["profile"]["bootstrap"] += 1
    cfg["profile"]["teach_steps"] += 1
    (d / "config.json").write_text(json.dumps(cfg))
    assert runs_module.train_run(runs, "switching", seed=0, device="cpu", progress=False).best_epoch == res.best_epoch


def test_unfinished_run_needs_resume(runs):
    d = runs_module.run_dir_for("smoke", "constant", "grouped", seed=1)
    stopped = train.fit  # interrupt train_run's fit after one epoch

    def stop_early(*a, **kw):
        return stopped(*a, **kw, stop_after=1)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train, "fit", stop_early)
        part = runs_module.train_run(runs, "constant", seed=1, device="cpu", progress=False)
    assert part.interrupted and not (d / "result.json").exists()
    started = json.loads((d / "config.json").read_text())["started"]
    with pytest.raises(BcdetError, match="resume"):
        runs_module.train_run(runs, "constant", seed=1, device="cpu", progress=False)
    done = runs_module.train_run(runs, "constant", seed=1, device="cpu", resume=True, progress=False)
    assert not done.interrupted and len(done.history) == 3 and (d / "result.json").exists()
    assert json.loads((d / "config.json").read_text())["started"] == started  # the first start is kept


_LOCK_HOLDER = """
import sys, time
from bcdet_helpers.runs import run_lock
with run_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_run_folder_is_locked_while_a_process_trains_in_it(runs):
    """Issue #27 case 3: two processes training in one run folder overwrote each other's checkpoints (one
    crashed on the other's checkpoint.pt.tmp). The second is refused with the holder's PID before it
    touches the folder, and a holder that dies (here: killed) releases it."""
    d = runs_module.run_dir_for("smoke", "switching", "grouped", seed=0)
    holder = subprocess.Popen([sys.executable, "-c", _LOCK_HOLDER, str(d)], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).parents[1])
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BcdetError, match=rf"{d.name} is in use: another process \(PID {holder.pid} on "):
            runs_module.train_run(runs, "switching", seed=0, device="cpu", progress=False)
        assert sorted(p.name for p in d.iterdir()) == [".lock"]
    finally:
        holder.kill()
        holder.wait()
    res = runs_module.train_run(runs, "switching", seed=0, device="cpu", progress=False)
    assert (d / "result.json").exists()
    with runs_module.run_lock(d):  # a finished run is only read: loading it needs no lock
        assert runs_module.train_run(runs, "switching", seed=0, device="cpu", progress=False).best_epoch == res.best_epoch


def test_cli_train_prints_where_results_went(runs, capsys, monkeypatch):
    monkeypatch.setattr(runs_module, "get_profile", lambda name, **kw: runs.__class__(**{**runs.to_dict(), **kw}))
    args = argparse.Namespace(profile="smoke", arm="onecycle", seed=2, kind="grouped", epochs=2,
                              device="cpu", resume=False, fold=0)
    assert cli_train(args) == 0
    out = capsys.readouterr().out
    assert str(runs_module.run_dir_for("smoke", "onecycle", "grouped", seed=2)) in out
    assert "val macro-F1" in out and "Training on cpu" in out


def test_training_plots_return_figures(uninterrupted):
    import matplotlib

    matplotlib.use("Agg")
    from bcdet_helpers import plots

    res, _ = uninterrupted
    fig = plots.training_history({"switching": res.history, "constant": res.history.assign(phase=0)})
    assert fig.axes and len(fig.axes[0].patches) >= 2  # one shaded band per phase
    assert plots.optimizer_paths(steps=20).axes


def test_one_macro_f1_for_training_and_evaluation_absent_class_pinned():
    """Issue #18: training's validation macro-F1 and evaluation's are one definition. With a class
    absent from the truth (here: no normal image), it is averaged over the classes present --
    0.833 on these four predictions, not scikit-learn's all-labels 0.556."""
    from bcdet_helpers import evaluate
    from bcdet_helpers.metrics import confusion

    y_true, y_pred = np.array([0, 0, 1, 1]), np.array([0, 0, 1, 2])
    proba = np.eye(3)[y_pred]
    assert macro_f1_from_confusion(confusion(y_true, y_pred, 3)) == pytest.approx(0.8333, abs=1e-4)
    assert evaluate.macro_f1(y_true, proba) == pytest.approx(0.8333, abs=1e-4)
    assert evaluate.metrics(y_true, proba)["macro_f1"] == pytest.approx(0.8333, abs=1e-4)


def test_cli_train_says_ctrl_c_once_with_how_to_go_on(runs, capsys, monkeypatch):
    """Issue #27: Ctrl-C printed two lines that disagreed (``pass resume=True`` and ``--resume``)."""
    monkeypatch.setattr(runs_module, "get_profile", lambda name, **kw: runs.__class__(**{**runs.to_dict(), **kw}))
    real, calls = train.validate, []

    def ctrl_c_in_epoch_2(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(train, "validate", ctrl_c_in_epoch_2)
    args = argparse.Namespace(profile="smoke", arm="onecycle", seed=3, kind="grouped", epochs=3,
                              device="cpu", resume=False, fold=0)
    assert cli_train(args) == 130
    said = [ln for ln in capsys.readouterr().out.splitlines() if "nterrupt" in ln]
    assert said == ["Interrupted (Ctrl-C) after epoch 1, which is checkpointed. To go on: resume=True "
                    "(bcdet train: the same command plus --resume)."]


def test_a_run_stopped_before_its_first_epoch_leaves_no_folder(busi_dir, tmp_path, monkeypatch):
    """#27: Ctrl-C (or a failure) before the first epoch ends used to leave a folder with config.json and
    .lock, refused as "an unfinished run" by the same command; a folder that existed before is kept."""
    from bcdet_helpers import runs as runs_module
    from bcdet_helpers import train as train_module

    monkeypatch.setenv("BCDET_DATA", str(busi_dir))
    monkeypatch.setenv("BCDET_RUNS", str(tmp_path))

    def stopped(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "fit", stopped)
    d = runs_module.run_dir_for("smoke", "constant", "grouped", seed=0)
    with pytest.raises(KeyboardInterrupt):
        runs_module.train_run("smoke", "constant", seed=0, device="cpu", progress=False)
    assert not d.exists()
    d.mkdir(parents=True)
    (d / "notes.txt").write_text("mine")
    with pytest.raises(KeyboardInterrupt):
        runs_module.train_run("smoke", "constant", seed=0, device="cpu", progress=False)
    assert (d / "notes.txt").read_text() == "mine"  # not created by this call: never removed
