"""Every exercise of every chapter: its solution passes its check, the notebook's starter does not.

The starter code is read from the notebook cells tagged ``exercise-<id>`` (what students see); the
solutions from the teacher's copy ``notebooks/solutions/chNN.py``. A check compares predictions with
what a run measured: the ``MEASURED`` contexts below are the `laptop` run on BUSI, read from the
recorded ``results/teaching/03_residual_lesson.json`` where that run wrote them down.

A chapter is checked here once it has a solutions file; add its exercises' contexts to ``MEASURED``
(and any names its cells need to ``_run_cell``). A chapter with exercises but no solutions yet is
reported as skipped, by name.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bcdet_helpers import model as bm
from bcdet_helpers.data.augment import AUGMENT
from bcdet_helpers.data.duplicates import THRESHOLD
from bcdet_helpers.data.splitdata import SplitData
from bcdet_helpers.stats import Interval
from bcdet_helpers.study import COMPARISONS
from bcdet_helpers.train import phase_table
from bcdet_helpers.exercises import CHAPTERS, EXERCISES, check, exercise_cells, load_solutions, with_solutions

ROOT = Path(__file__).resolve().parents[1]
SOLVED = tuple(ch for ch in CHAPTERS if (ROOT / "notebooks" / "solutions" / f"ch{ch}.py").exists())
NOTEBOOKS = {ch: next((ROOT / "notebooks").glob(f"{ch}_*.ipynb")) for ch in SOLVED}
SOLUTIONS = {ch: ROOT / "notebooks" / "solutions" / f"ch{ch}.py" for ch in SOLVED}
LESSON = json.loads((ROOT / "results" / "teaching" / "03_residual_lesson.json").read_text())


def _pairs() -> pd.DataFrame:
    return pd.DataFrame({
        "file_a": ["benign/benign (433).png", "benign/benign (1).png", "normal/normal (2).png", "benign/benign (9).png"],
        "class_a": ["benign", "benign", "normal", "benign"],
        "file_b": ["malignant/malignant (145).png", "benign/benign (7).png", "normal/normal (5).png", "normal/normal (1).png"],
        "class_b": ["malignant", "benign", "normal", "normal"],
        "similarity": [1.0, 0.93, 0.81, 0.74]})


def _split_data() -> SplitData:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8, generator=g)
    images[30:] //= 4  # val/test darker than train: using them would shift the mean
    split = np.array(["train"] * 30 + ["val"] * 5 + ["test"] * 5)
    mean, std = SplitData.train_stats(images, split)
    return SimpleNamespace(images=images, split=split, mean=mean, std=std)


def _plain(depth):
    return LESSON["loss_end_mean"][f"plain {depth}"]


MEASURED = {  # what the notebook passes to check(...), as the laptop run on BUSI measures it
    "01.1": lambda: {"counts": pd.Series({"benign": 437, "malignant": 210, "normal": 133})},
    "01.2": lambda: {"pairs": _pairs()},
    "01.3": lambda: {"threshold": THRESHOLD},
    "02.1": lambda: {"leaked": 62},  # notebook 02 on BUSI, laptop profile: random split, test fold 0, train-test
    "02.2": lambda: {},
    "02.3": lambda: {"data": _split_data()},
    "02.4": lambda: {"augment": AUGMENT},
    "03.1": lambda: {"minimum": LESSON["block_minimum"]},
    "03.2": lambda: {},
    "03.3": lambda: {},
    "03.4": lambda: {},
    "03.5": lambda: {"final_loss": {d: _plain(d) for d in (LESSON["twins"]["shallow"], LESSON["twins"]["deep"])}},
    "03.6": lambda: {"ratio": LESSON["grad_first_last"]["plain"][0] / LESSON["grad_first_last"]["plain"][1]},
    "03.7": lambda: {"measured": LESSON["first_batch_loss"]["width 16, zero (ours)"]},
    "04.1": lambda: _chapter04_loop(),
    "04.2": lambda: {"table": phase_table(("constant", "decay", "switching", "onecycle"), epochs=50)},
    # largest peak/entry ratios: constant and decay from the first laptop tuning trials
    # (results/history/tuning-laptop-unscaled-head/), switching from an untuned `class` run (SGD at 1e-2: 4.25 / 0.82),
    # onecycle a placeholder below those -- the check compares the prediction with the arg-max
    "04.3": lambda: {"ratios": {"constant": 0.94, "decay": 1.05, "switching": 5.16, "onecycle": 1.0}},
    "05.1": lambda: {"n": 156},  # one laptop test fold (780 images / 5)
    "05.2": lambda: {"clustered": Interval(0.78, 0.70, 0.85, 0.038), "image_level": Interval(0.78, 0.72, 0.84, 0.031)},
    "05.3": lambda: {},
    "05.4": lambda: {"comparisons": COMPARISONS},
    # a ladder where choosing the epoch on test adds the most (what the solution predicts for laptop)
    "05.5": lambda: {"table": pd.DataFrame({"rung": ["honest", "image_folds", "test_epoch", "best_seed", "lucky_fold"],
                                            "gain": [float("nan"), 0.03, 0.05, 0.01, 0.02]})},
}


def _chapter04_loop() -> dict:
    """Notebook 04's own `train_by_hand` (the cell tagged training-loop), on small fake data: exercise
    04.1 runs it with the student's `next_optimizer` and compares two epochs with `fit`."""
    import math

    import nbformat

    from bcdet_helpers.callbacks import Batches, Precision
    from bcdet_helpers.profiles import get_profile
    from bcdet_helpers.train import phase_of_epochs, validate

    nb = nbformat.read(ROOT / "notebooks" / "04_training_optimizer_switching.ipynb", as_version=4)
    (cell,) = [c.source for c in nb.cells if "training-loop" in c.metadata.get("tags", [])]
    prof = get_profile("smoke", image_size=16, width=4, batch_size=16)
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(60) % 3
    images = ((60 + 50 * labels).view(60, 1, 1, 1) + 60 * torch.randn(60, 1, 16, 16, generator=g)).clamp(0, 255)
    split = np.array(["train"] * 40 + ["val"] * 14 + ["test"] * 6)
    mean, std = SplitData.train_stats(images.to(torch.uint8), split)
    data = SplitData(images=images.to(torch.uint8), labels=labels, files=[f"{i}.png" for i in range(60)],
                     split=split, mean=mean, std=std)
    namespace = {"math": math, "torch": torch, "F": F, "pd": pd, "Batches": Batches, "Precision": Precision,
                 "phase_of_epochs": phase_of_epochs, "validate": validate, "P": prof, "SEED": 0}
    exec(compile(cell, "<notebook 04 training loop>", "exec"), namespace)
    return {"loop": namespace["train_by_hand"], "data": data, "profile": prof}


def _run_cell(source: str, answer_name: str):
    """Execute one exercise cell as the notebook would (its imports in scope); return what it defines."""
    namespace = {"torch": torch, "nn": nn, "F": F, "np": np, "pd": pd,
                 "ConvBlock": bm.ConvBlock, "ResidualBlock": bm.ResidualBlock}
    exec(compile(source, f"<exercise {answer_name}>", "exec"), namespace)
    return namespace[answer_name]


IDS = sorted(i for i in EXERCISES if EXERCISES[i].chapter in SOLVED)


def test_every_chapter_has_three_or_more_exercises():
    assert {"01", "02", "03"} <= set(SOLVED), "chapters 01-03 must have solutions (notebooks/solutions/)"
    for ch in SOLVED:
        assert sum(i.startswith(ch + ".") for i in IDS) >= 3, ch
    assert set(MEASURED) == set(IDS), "add the new exercise's measured context here"


def test_chapters_without_solutions_are_named():
    unsolved = [ch for ch in CHAPTERS if ch not in SOLVED]
    if unsolved:
        pytest.skip(f"chapter(s) {', '.join(unsolved)} have exercises but no notebooks/solutions/chNN.py: "
                    "their checks are not tested yet")


@pytest.mark.parametrize("ex_id", IDS)
def test_solution_passes(ex_id):
    ex = EXERCISES[ex_id]
    solution = load_solutions(SOLUTIONS[ex.chapter])
    assert ex_id in solution, f"{SOLUTIONS[ex.chapter].name} has no '# %% {ex_id}' section"
    feedback = check(ex_id, _run_cell(solution[ex_id], ex.answer), **MEASURED[ex_id]())
    assert feedback.passed, feedback


@pytest.mark.parametrize("ex_id", IDS)
def test_starter_cell_fails(ex_id):
    ex = EXERCISES[ex_id]
    starters = exercise_cells(NOTEBOOKS[ex.chapter])
    assert ex_id in starters, f"{NOTEBOOKS[ex.chapter].name} has no cell tagged exercise-{ex_id}"
    feedback = check(ex_id, _run_cell(starters[ex_id], ex.answer), **MEASURED[ex_id]())
    assert feedback.status == "not answered yet", feedback


@pytest.mark.parametrize("ch", SOLVED)
def test_notebook_checks_each_exercise_after_its_cell_and_hides_solutions(ch):
    import nbformat

    nb = nbformat.read(NOTEBOOKS[ch], as_version=4)
    sources = [c.source for c in nb.cells]
    starters = exercise_cells(nb)
    assert set(starters) == {i for i in IDS if i.startswith(ch + ".")}, "tagged cells and registry disagree"
    for ex_id, starter in starters.items():
        at = sources.index(starter)
        assert any(f'check("{ex_id}"' in s for s in sources[at + 1:]), f"no check(\"{ex_id}\", ...) after its cell"
    text = "\n".join(sources)
    assert "Solution" not in text or "<details" not in text, "solutions must not hide inside the notebook"
    for ex_id, solution in load_solutions(SOLUTIONS[ch]).items():
        for line in solution.splitlines():
            line = line.split("#")[0].strip()
            if len(line) > 12 and line not in starters[ex_id] and not line.startswith(("def ", "class ", "super()")):
                assert line not in text, f"notebook {ch} shows the solution of {ex_id}: {line!r}"
    teacher = with_solutions(nb, load_solutions(SOLUTIONS[ch]))
    assert exercise_cells(teacher) != starters  # the teacher's copy really differs


def test_wrong_answers_get_hints_not_errors():
    wrong = check("03.3", (8, 256, 48, 48))
    assert wrong.status == "not quite" and "pool" in wrong.message
    assert check("03.4", 2 * 3 * 3 * 256 * 256).status == "not quite"
    assert "255" in check("02.2", lambda x, m, s: (x.float() - m) / s).message
    crash = check("01.2", lambda pairs: pairs["no such column"], pairs=_pairs())
    assert crash.status == "not quite" and "KeyError" in crash.message
    assert check("01.1", 56, counts={"a": 437, "b": 210, "c": 133}).status == "not quite"  # a percentage
    assert "not answered" in str(check("03.1", None, minimum={"ours": -1.0, "he": 0.0}))
    with pytest.raises(ValueError, match="no exercise"):
        check("99.9", 1)


def test_solutions_file_format(tmp_path):
    path = tmp_path / "ch99.py"
    path.write_text('"""doc"""\n\n# %% 99.1\nx = 1\n\n# %% 99.2 a title\ndef f():\n    return 2\n')
    assert load_solutions(path) == {"99.1": "x = 1\n", "99.2": "def f():\n    return 2\n"}
    assert re.fullmatch(r"\d\d\.\d+", "03.7")
