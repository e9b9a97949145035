"""Every exercise of every chapter: its solution passes its check, the notebook's starter does not.

The starter code is read from the notebook cells tagged ``exercise-<id>`` (what students see); the
solutions from the teacher's copy ``notebooks/solutions/chNN.py``. A check compares predictions (and
readings of a table) with what a run measured, so every solution is checked against the **recorded**
``class`` and ``laptop`` results (:mod:`bcdet_helpers.research.recorded` reads ``results/class/``,
``results/laptop/``, ``results/laptop-cv/``, ``results/*-ladder/`` and ``results/teaching/``): a
solution that holds for one run only, or a number typed in here, cannot pass. Code exercises, whose
answer does not depend on a run, are also given small made-up inputs (``SYNTHETIC``) where they need some.

A chapter is checked here once it has a solutions file; a chapter with exercises but no solutions yet
is reported as skipped, by name.
"""
from __future__ import annotations

import math
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
from bcdet_helpers.data.splitdata import SplitData
from bcdet_helpers.exercises import (CHAPTERS, EXERCISES, check, exercise_cells, load_solutions, open_question,
                                     with_solutions)
from bcdet_helpers.exercises.core import MEASURED as LOG, jsonable, save_measured
from bcdet_helpers.research import recorded

ROOT = Path(__file__).resolve().parents[1]
SOLVED = tuple(ch for ch in CHAPTERS if (ROOT / "notebooks" / "solutions" / f"ch{ch}.py").exists())
NOTEBOOKS = {ch: next((ROOT / "notebooks").glob(f"{ch}_*.ipynb")) for ch in SOLVED}
SOLUTIONS = {ch: ROOT / "notebooks" / "solutions" / f"ch{ch}.py" for ch in SOLVED}
PROFILES = ("class", "laptop")  # the recorded runs every solution must pass on


def _pairs() -> pd.DataFrame:
    return pd.DataFrame({
        "file_a": ["benign/benign (433).png", "benign/benign (1).png", "normal/normal (2).png", "benign/benign (9).png",
                   "benign/benign (7).png"],
        "class_a": ["benign", "benign", "normal", "benign", "benign"],
        "file_b": ["malignant/malignant (145).png", "benign/benign (7).png", "normal/normal (5).png",
                   "normal/normal (1).png", "benign/benign (8).png"],
        "class_b": ["malignant", "benign", "normal", "normal", "benign"],
        "similarity": [1.0, 0.93, 0.81, 0.74, 0.9]})


def _files_and_split(profile: str = "class"):
    """Every image of a recorded profile and its part (its recorded grouped split), with made-up pairs
    among them (pairs are not recorded)."""
    csv = ROOT / "results" / profile / "splits" / "grouped-fold0-seed0.csv"
    split = pd.read_csv(csv) if csv.exists() else pd.DataFrame({"file": _pairs()["file_a"], "split": "train"})
    files = split["file"].tolist()
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, len(files), 60), rng.integers(0, len(files), 60)
    pairs = pd.DataFrame({"file_a": [files[i] for i in a], "file_b": [files[j] for j in b],
                          "class_a": "benign", "class_b": "benign", "similarity": 0.9})
    return files, split["split"].to_numpy(), pairs[a != b]


def _split_data() -> SplitData:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8, generator=g)
    images[30:] //= 4  # val/test darker than train: using them would shift the mean
    split = np.array(["train"] * 30 + ["val"] * 5 + ["test"] * 5)
    mean, std = SplitData.train_stats(images, split)
    return SimpleNamespace(images=images, parts=split, mean=mean, std=std)


def _validation(profile: str) -> dict:
    """Chapter 04's switching run's validation images, as the recorded study predicted them (05.3)."""
    val = recorded.fold_predictions(profile, part="val")
    if val is None:
        return {}
    return {"p_malignant": val["p_malignant"].to_numpy(), "is_malignant": (val["label"] == "malignant").to_numpy()}


def _members(profile: str) -> dict:
    """This fold's arms as the members of an ensemble, from the recorded study (05.5)."""
    tables = [recorded.fold_predictions(profile, arm) for arm in recorded.ARMS]
    tables = [t for t in tables if t is not None]
    if len(tables) < 2:
        return {}
    members = pd.concat(tables).rename(columns={"arm": "member"})
    return {"table": members[["file", "y", "member", "p_benign", "p_malignant", "p_normal"]]}


def _groups(profile: str) -> dict:
    files, _, pairs = _files_and_split(profile)
    return {"files": files, "pairs": pairs}


def _leaks(profile: str) -> dict:
    files, split, pairs = _files_and_split(profile)
    return {"files": files, "parts": split, "pairs": pairs}


SYNTHETIC = {  # what the code exercises' checks are given: made-up or recorded inputs, no measurement to match
    "01.3": lambda profile: {"pairs": _pairs()},
    "01.4": _groups,
    "02.2": _leaks,
    "02.4": lambda profile: {"data": _split_data()},
    "04.2": lambda profile: _chapter04_loop(),
    "05.3": _validation,
    "05.5": _members,
}


def _chapter04_loop() -> dict:
    """Notebook 04's own `train_by_hand` on small fake data: exercise 04.2 runs it with the student's
    `next_optimizer` and compares two epochs with `fit`."""
    return _chapter04_cells()[1]


def _chapter04_cells() -> tuple[dict, dict]:
    """The cells tagged training-loop of notebook 04 (`train_epoch`, `train_by_hand`), run: what they define
    (and their ``source``), and the context of exercise 04.2's check."""
    import nbformat

    from bcdet_helpers.batches import Batches
    from bcdet_helpers.profiles import get_profile
    from bcdet_helpers.train import make_scheduler, phase_of_epochs, validate

    nb = nbformat.read(ROOT / "notebooks" / "04_training_optimizer_switching.ipynb", as_version=4)
    source = "\n\n".join(c.source for c in nb.cells if "training-loop" in c.metadata.get("tags", []))
    prof = get_profile("smoke", image_size=16, width=4, batch_size=16)
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(60) % 3
    images = ((60 + 50 * labels).view(60, 1, 1, 1) + 60 * torch.randn(60, 1, 16, 16, generator=g)).clamp(0, 255)
    split = np.array(["train"] * 40 + ["val"] * 14 + ["test"] * 6)
    mean, std = SplitData.train_stats(images.to(torch.uint8), split)
    data = SplitData(images=images.to(torch.uint8), labels=labels, files=[f"{i}.png" for i in range(60)],
                     parts=split, mean=mean, std=std)
    namespace = {"torch": torch, "F": F, "pd": pd, "Batches": Batches, "make_scheduler": make_scheduler,
                 "phase_of_epochs": phase_of_epochs, "validate": validate, "P": prof, "SEED": 0}
    exec(compile(source, "<notebook 04 training loop>", "exec"), namespace)
    return {**namespace, "source": source}, {"loop": namespace["train_by_hand"], "data": data, "profile": prof}


def test_notebook_04_loop_is_fits_loop():
    """The loop a student writes in notebook 04 reads as `fit`'s: the same steps under the same names,
    and its `train_epoch` gives the package's numbers from the same start (exercise 04.2's check, run
    with the solution below, compares whole epochs with `fit`)."""
    import ast
    import inspect

    from bcdet_helpers import train
    from bcdet_helpers.batches import Batches
    from bcdet_helpers.model import build_model

    def called(source):
        calls = [n.func for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call)]
        return {f.id for f in calls if isinstance(f, ast.Name)}

    cells, ctx = _chapter04_cells()
    steps = {"phase_of_epochs", "next_optimizer", "make_scheduler", "train_epoch", "validate"}
    assert steps <= called(cells["source"]), steps - called(cells["source"])
    assert steps <= called(inspect.getsource(train.fit)), steps - called(inspect.getsource(train.fit))
    mine, theirs = (list(inspect.signature(f).parameters) for f in (cells["train_epoch"], train.train_epoch))
    assert theirs[:len(mine)] == mine  # the package's adds mixed precision at the end
    out = []
    for train_epoch in (cells["train_epoch"], train.train_epoch):
        torch.manual_seed(0)
        model = build_model(ctx["profile"]).to(memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        out.append(train_epoch(model, Batches(ctx["data"], 16, 0, torch.device("cpu"), False), optimizer))
    assert out[0]["lr"] == out[1]["lr"] and out[0]["train_acc"] == out[1]["train_acc"]
    assert out[0]["train_loss"] == pytest.approx(out[1]["train_loss"], rel=1e-5)


def _run_cell(source: str, answer_name: str, context: dict | None = None):
    """Execute one exercise cell as the notebook would (its imports and what the notebook measured in
    scope: a reading exercise reads the notebook's table); return what it defines."""
    namespace = {"torch": torch, "nn": nn, "F": F, "np": np, "pd": pd, "math": math,
                 "ConvBlock": bm.ConvBlock, "ResidualBlock": bm.ResidualBlock, **(context or {})}
    exec(compile(source, f"<exercise {answer_name}>", "exec"), namespace)
    return namespace[answer_name]


IDS = sorted(i for i in EXERCISES if EXERCISES[i].chapter in SOLVED)
MEASURING = [i for i in IDS if EXERCISES[i].kind in ("predict", "read")]


def _context(ex_id: str, profile: str) -> dict:
    """What the notebook under ``profile`` gives the check of ``ex_id``, from the recorded results."""
    found = recorded.contexts(profile)
    if ex_id in SYNTHETIC:
        return SYNTHETIC[ex_id](profile)
    if ex_id in found:
        return found[ex_id]
    return {}


def _code_lines(source: str) -> int:
    return sum(1 for line in source.splitlines() if line.strip() and not line.strip().startswith("#"))


def test_every_chapter_climbs_to_real_code_and_an_open_question():
    """Each chapter: three or more exercises, at least one code exercise whose solution is five lines or
    more, and one open question with a model answer in the teacher's copy."""
    assert {"01", "02", "03", "04", "05"} <= set(SOLVED), "every chapter needs notebooks/solutions/chNN.py"
    for ch in SOLVED:
        mine = [i for i in IDS if i.startswith(ch + ".")]
        assert len(mine) >= 3, ch
        solutions = load_solutions(SOLUTIONS[ch])
        code = [i for i in mine if EXERCISES[i].kind == "code"]
        assert any(_code_lines(solutions[i]) >= 5 for i in code), f"chapter {ch}: no code exercise of 5+ lines"
        opens = [i for i in mine if EXERCISES[i].kind == "open"]
        assert opens, f"chapter {ch} has no open question"
        for i in opens:
            assert check(i, _run_cell(solutions[i], EXERCISES[i].answer)).status == "written down"


def test_chapters_without_solutions_are_named():
    unsolved = [ch for ch in CHAPTERS if ch not in SOLVED]
    if unsolved:
        pytest.skip(f"chapter(s) {', '.join(unsolved)} have exercises but no notebooks/solutions/chNN.py: "
                    "their checks are not tested yet")


@pytest.mark.parametrize("profile", PROFILES)
def test_recorded_results_hold_every_measured_context(profile):
    """Every prediction or reading exercise that compares with a measurement finds it in the recorded
    results of ``profile`` -- a re-recorded run that loses one fails here, by name."""
    import inspect

    found = recorded.contexts(profile)
    needs = [i for i in MEASURING if any(p.kind == p.KEYWORD_ONLY and p.default is p.empty
                                         for p in inspect.signature(EXERCISES[i].function).parameters.values())]
    missing = [i for i in needs if i not in found]
    assert not missing, (f"results/ records no measurement for exercise(s) {missing} under {profile}: re-record "
                         f"with `bcdet reproduce --profile {profile}` and `bcdet publish` (or see "
                         "results/teaching/README.md)")


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("ex_id", IDS)
def test_solution_passes_on_recorded_run(ex_id, profile):
    ex = EXERCISES[ex_id]
    solution = load_solutions(SOLUTIONS[ex.chapter])
    assert ex_id in solution, f"{SOLUTIONS[ex.chapter].name} has no '# %% {ex_id}' section"
    context = _context(ex_id, profile)
    feedback = check(ex_id, _run_cell(solution[ex_id], ex.answer, context), **context)
    assert feedback.passed, f"{profile} ({recorded.sources(profile).get(ex_id, 'no record')}): {feedback}"


@pytest.mark.parametrize("ladder", sorted(p.parent.name for p in (ROOT / "results").glob("*-ladder/ladder.csv")))
def test_ladder_solution_holds_on_every_recorded_ladder(ladder):
    """05.6's solution against each recorded ladder (results/class-ladder, laptop-ladder, paper-ladder): the
    prediction is one a student can reason out, not the biggest rung of one run."""
    assert {"class-ladder", "laptop-ladder"} <= set(p.parent.name for p in (ROOT / "results").glob("*-ladder/ladder.csv"))
    table = pd.read_csv(ROOT / "results" / ladder / "ladder.csv")
    solution = load_solutions(SOLUTIONS["05"])["05.6"]
    feedback = check("05.6", _run_cell(solution, "predicted_bigger"), table=table)
    assert feedback.passed, f"{ladder}: {feedback}"


@pytest.mark.parametrize("ex_id", IDS)
def test_starter_cell_fails(ex_id):
    ex = EXERCISES[ex_id]
    starters = exercise_cells(NOTEBOOKS[ex.chapter])
    assert ex_id in starters, f"{NOTEBOOKS[ex.chapter].name} has no cell tagged exercise-{ex_id}"
    context = _context(ex_id, "class")
    feedback = check(ex_id, _run_cell(starters[ex_id], ex.answer, context), **context)
    assert feedback.status == "not answered yet", feedback


@pytest.mark.parametrize("ch", SOLVED)
def test_notebook_checks_each_exercise_after_its_cell_and_hides_solutions(ch):
    import nbformat

    nb = nbformat.read(NOTEBOOKS[ch], as_version=4)
    sources = [c.source for c in nb.cells]
    starters = exercise_cells(nb)
    assert set(starters) == {i for i in IDS if i.startswith(ch + ".")}, "tagged cells and registry disagree"
    assert list(starters) == sorted(starters, key=lambda i: int(i.split(".")[1])), \
        f"exercises of notebook {ch} are not numbered in reading order: {list(starters)}"
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


@pytest.mark.parametrize("ch", SOLVED)
def test_predictions_come_before_their_measurement(ch):
    """A prediction's starter cell comes before the cell that computes what its check compares with, and the
    markdown above it does not give the answer away (the spoilers of issue #29)."""
    import nbformat

    nb = nbformat.read(NOTEBOOKS[ch], as_version=4)
    sources = [c.source for c in nb.cells]
    for ex_id, starter in exercise_cells(nb).items():
        if EXERCISES[ex_id].kind != "predict":
            continue
        at = sources.index(starter)
        above = "\n".join(s for c, s in zip(nb.cells[:at], sources[:at]) if c.cell_type == "markdown")
        assert "near-tie" not in above[-1500:], f"{ex_id}: the text above the prediction announces the result"
        if ex_id == "03.5":
            assert "ln 3" not in above and "1.10" not in above, "03.5's answer stands above it"


def test_wrong_answers_get_hints_not_errors():
    wrong = check("03.3", (8, 256, 48, 48))
    assert wrong.status == "not quite" and "pool" in wrong.message
    assert check("03.4", 2 * 3 * 3 * 256 * 256).status == "not quite"
    assert "255" in check("02.3", lambda x, m, s: (x.float() - m) / s).message
    crash = check("01.3", lambda pairs: pairs["no such column"], pairs=_pairs())
    assert crash.status == "not quite" and "KeyError" in crash.message
    assert check("01.1", 56, counts={"a": 437, "b": 210, "c": 133}).status == "not quite"  # a percentage
    assert "not answered" in str(check("03.1", None, minimum={"ours": -1.0, "he": 0.0}))
    pairs_only = lambda files, pairs: list(range(len(files)))  # noqa: E731 -- every file its own group
    assert check("01.4", pairs_only).status == "not quite"
    assert check("05.3", lambda p, m, s: float(np.sort(p[m])[::-1][1])).status == "not quite"
    assert check("01.5", "too short").status == "not quite"
    with pytest.raises(ValueError, match="no exercise"):
        check("99.9", 1)


def test_hints_point_rather_than_tell():
    """No hint spells out the call or formula a code exercise asks for (issue #29: 04.1 used to)."""
    import inspect

    from bcdet_helpers.exercises import ch02, ch04

    for module in (ch02, ch04):
        text = inspect.getsource(module)
        hints = " ".join(re.findall(r'hint\((f?"[^)]*)', text, flags=re.S))
        assert "torch.optim.SGD(" not in hints and "torch.optim.Adam(model" not in hints
        assert "(x / 255 - mean) / std" not in hints


def test_checks_record_what_they_were_given(tmp_path):
    """A notebook's checks write down what they compared with; save_measured merges it into metrics.json."""
    LOG.clear()
    check("05.1", None, n=156)
    check("04.3", "switching", ratios={"switching": 1.1, "decay": 1.0})
    path = tmp_path / "metrics.json"
    path.write_text('{"profile": "class", "exercises": {"01.1": {"counts": {"benign": 1}}}}')
    saved = save_measured(path)
    assert saved["05.1"] == {"n": 156} and saved["01.1"] == {"counts": {"benign": 1}}
    assert jsonable({"x": np.float32(0.5), "t": pd.DataFrame({"a": [1]})}) == {"x": 0.5, "t": {"rows": [{"a": 1}]}}
    assert open_question(" ".join(["word"] * 12)).startswith("written down")
    LOG.clear()


def test_solutions_file_format(tmp_path):
    path = tmp_path / "ch99.py"
    path.write_text('"""doc"""\n\n# %% 99.1\nx = 1\n\n# %% 99.2 a title\ndef f():\n    return 2\n')
    assert load_solutions(path) == {"99.1": "x = 1\n", "99.2": "def f():\n    return 2\n"}
    assert re.fullmatch(r"\d\d\.\d+", "03.7")
