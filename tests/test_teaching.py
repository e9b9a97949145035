"""The course tells the truth in class (issue #29): the teacher kit covers every chapter, the notebooks
carry no typed-in run numbers or project history, and the figures say what the text says."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from bcdet_helpers.exercises import EXERCISES

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = {p.name[:2]: p for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))}
TEACHING = (ROOT / "notebooks" / "TEACHING.md").read_text()


def _text(chapter: str, kind: str | None = None) -> str:
    nb = nbformat.read(NOTEBOOKS[chapter], as_version=4)
    return "\n".join(c.source for c in nb.cells if kind is None or c.cell_type == kind)


def _chapter_kit(chapter: str) -> str:
    parts = re.split(r"^## (\d\d) · ", TEACHING, flags=re.M)
    kits = dict(zip(parts[1::2], parts[2::2]))
    assert chapter in kits, f"TEACHING.md has no section '## {chapter} · ...'"
    return kits[chapter]


@pytest.mark.parametrize("chapter", sorted(NOTEBOOKS))
def test_teacher_kit_for_every_chapter(chapter):
    kit = _chapter_kit(chapter)
    for part in ("**Objectives:**", "**Prerequisites:**", "**Expect under `class`:**", "**Misconceptions.**",
                 "**Exercises.**", "| min | what |"):
        assert part in kit, f"chapter {chapter}'s kit lacks {part}"
    minutes = re.findall(r"^\| (\d+)–(\d+) \|", kit, flags=re.M)
    assert len(minutes) >= 5 and minutes[0][0] == "0", "a minute-by-minute plan from minute 0"
    for ex_id in (i for i in EXERCISES if i.startswith(chapter + ".")):
        assert f"| {ex_id} |" in kit, f"{ex_id}: answer and usual wrong answers missing from the kit"
    assert "results/class/report.md" in kit  # the numbers to expect come from the recorded run


def test_teaching_types_in_no_class_run_numbers():
    """The `class` run is re-recorded whenever the course changes: the kit points at it instead."""
    assert "0bd09ba" not in TEACHING
    assert not re.search(r"\b\d+ s wall\b|\bclass — \d+ s\b", TEACHING)
    assert "python -m bcdet_helpers.research.recorded class" in TEACHING


def test_slides_are_offline_in_the_kit():
    assert "needs internet" not in TEACHING and "offline" in TEACHING


@pytest.mark.parametrize("chapter", sorted(NOTEBOOKS))
def test_notebooks_carry_no_typed_in_run_numbers_or_missing_files(chapter):
    text = _text(chapter)
    assert "0bd09ba" not in text, "a commit and its timings typed into the notebook go stale"
    assert "DESIGN.md" not in text, "the project has no DESIGN.md"
    assert not re.search(r"\b\d+ s under the `class` profile", text)


def test_chapter_01_fixes():
    md = _text("01", "markdown")
    assert "no two classes share one size" not in md
    assert "**macro-F1**" in md  # defined where it is first used


def test_chapter_03_tells_what_the_cited_papers_found():
    md = _text("03", "markdown") + _text("03", "code")
    assert "Identity Mappings in Deep Residual Networks" in md and "ReLU before addition" in md
    assert "which is what He et al.'s follow-up \"pre-activation\"" not in md
    assert "re-centres the stream" not in md or "After `res2` nothing does" in md
    assert "He et\nal. saw the same" not in md and "He et al. saw the same" not in md
    for history in ("Myrtle", "logit_scale", "results/tuning", "head-check"):
        assert history not in md, f"project history in the student text: {history}"


def test_chapter_04_does_not_announce_its_results():
    md = _text("04", "markdown")
    assert "near-tie" not in md and "below 1.05" not in md and "results/history" not in md


def test_chapter_05_labels_each_profile_and_writes_its_statistics():
    code = _text("05", "code")
    assert code.count("banner(") >= 6  # one line per section says whose runs, computed now or recorded
    assert "def group_bootstrap(" in code and "st.cluster_bootstrap(" in code
    assert "def paired_group_bootstrap(" in code and "st.paired_cluster_bootstrap(" in code
    assert "plots.forest_pair(" in code  # one fold beside the recorded verdict
    assert "for cls in CLASSES:" in code  # Grad-CAM shows every class


def test_training_history_shades_switching_and_labels_the_phase_rate():
    """A tie in the number of phases no longer shades `decay`; the label is the phase's rate, not the
    warm-up's first epoch (issue #29, point 5)."""
    from bcdet_helpers.plots.training import _phase_arm, _phase_spans

    def history(optimizers, rates):
        rows = [{"epoch": e + 1, "phase": p, "optimizer": o, "lr": lr}
                for e, (p, o, lr) in enumerate(zip(range(len(optimizers)), optimizers, rates))]
        return pd.DataFrame(rows)

    decay = history(["adam"] * 4, [1e-3, 3e-4, 1e-4, 1e-5])
    switching = history(["adam", "sgd", "adam", "sgd"], [1e-3, 4e-3, 2e-3, 2e-3])
    assert _phase_arm({"decay": decay, "switching": switching}) == "switching"
    assert _phase_arm({"decay": decay, "other": switching}) == "other"  # most optimizer changes
    warm = pd.DataFrame({"epoch": [1, 2, 3], "phase": [0, 0, 0], "optimizer": "adam", "lr": [1e-3, 3e-3, 3e-3]})
    assert _phase_spans(warm)[0][3] == 3e-3
