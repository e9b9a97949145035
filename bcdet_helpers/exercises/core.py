"""The machinery every chapter's exercises share: the registry, :func:`check`, and the teacher's tools.

A chapter module registers its checks with :func:`exercise`. A check function receives the
student's answer (plus whatever the notebook measured, as keyword arguments), **returns** a short
sentence when the answer is right, and calls :func:`hint` (which raises) when it is not -- the hint
says where to look, never what to write.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

CORRECT, NOT_QUITE, NOT_ANSWERED, WRITTEN = "correct", "not quite", "not answered yet", "written down"
#: what an exercise asks for: a prediction made before the cell that measures it, a figure or table to read,
#: code to write, or an open question (no automatic check: the teacher's copy holds a model answer)
KINDS = ("predict", "read", "code", "open")


class NotAnswered(Exception):
    """The student has not written anything yet (the answer, or what their function returns, is ``None``)."""


class Hint(Exception):
    """A wrong answer; the message is the hint shown to the student."""


def hint(message: str):
    """Stop the check here and show ``message`` as the hint."""
    raise Hint(message)


def call(function, *args, **kwargs):
    """Call the student's function; a function that still returns ``None`` counts as not answered."""
    if not callable(function):
        hint(f"expected a function (def ...), got a {type(function).__name__}")
    result = function(*args, **kwargs)
    if result is None:
        raise NotAnswered
    return result


def choice(answer, options) -> str:
    """The student's multiple-choice answer normalised (stripped, lower case), or a hint listing ``options``."""
    text = str(answer).strip().strip("'\"").lower()
    if text not in options:
        hint(f"answer with one of {', '.join(repr(o) for o in options)}")
    return text


def number(answer) -> float:
    """The student's answer as a float, or a hint that a number is expected."""
    if isinstance(answer, bool):
        hint("give a number, not True/False")
    try:
        return float(answer)
    except (TypeError, ValueError):
        hint(f"give a number, not {answer!r}")


@dataclass(frozen=True)
class Feedback:
    """What :func:`check` answers. Jupyter shows it as one coloured line; ``passed`` is for tests."""

    exercise: str
    status: str  # "correct" | "not quite" | "not answered yet" | "written down" (an open question)
    message: str = ""

    @property
    def passed(self) -> bool:
        return self.status in (CORRECT, WRITTEN)

    def __str__(self) -> str:
        mark = {CORRECT: "✔", NOT_QUITE: "✘", NOT_ANSWERED: "…", WRITTEN: "✎"}[self.status]
        return f"{mark} Exercise {self.exercise}: {self.status}" + (f" -- {self.message}" if self.message else "")

    __repr__ = __str__

    def _repr_markdown_(self) -> str:
        colour = {CORRECT: "green", NOT_QUITE: "#b35900", NOT_ANSWERED: "grey", WRITTEN: "#1f5f9f"}[self.status]
        mark = {CORRECT: "✔", NOT_QUITE: "✘", NOT_ANSWERED: "…", WRITTEN: "✎"}[self.status]
        text = f" — {self.message}" if self.message else ""
        return f'<span style="color:{colour}">{mark} <b>Exercise {self.exercise}: {self.status}</b>{text}</span>'


@dataclass(frozen=True)
class Exercise:
    id: str  # "03.2": chapter 03, exercise 2
    answer: str  # the name the student's cell defines (what the notebook passes to check)
    function: Callable
    title: str = ""
    kind: str = "predict"  # one of KINDS

    @property
    def chapter(self) -> str:
        return self.id.split(".")[0]


EXERCISES: dict[str, Exercise] = {}


def exercise(exercise_id: str, answer: str, title: str = "", kind: str = "predict"):
    """Register the decorated function as the check of ``exercise_id``; ``answer`` names what the
    student's cell defines (a variable or a function); ``kind`` is one of :data:`KINDS`."""
    if not re.fullmatch(r"\d\d\.\d+", exercise_id):
        raise ValueError(f"exercise ids look like '03.2', got {exercise_id!r}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")

    def register(function):
        if exercise_id in EXERCISES:
            raise ValueError(f"exercise {exercise_id} is registered twice")
        EXERCISES[exercise_id] = Exercise(exercise_id, answer, function, title or (function.__doc__ or "").split("\n")[0],
                                          kind)
        return function

    return register


def check(exercise_id: str, answer, **measured) -> Feedback:
    """Check the student's ``answer`` to ``exercise_id``; ``measured`` passes what the notebook
    computed (the check of a prediction compares it with this run's measurement).

    Never raises for a wrong or half-written answer: a notebook must run to the end either way.
    """
    try:
        ex = EXERCISES[exercise_id]
    except KeyError:
        raise ValueError(f"no exercise {exercise_id!r}; known: {', '.join(sorted(EXERCISES))}") from None
    if ex.kind in ("predict", "read") and measured:
        MEASURED[exercise_id] = jsonable(measured)  # what this run measured: save_measured writes it down
    if answer is None or answer is Ellipsis:
        return Feedback(exercise_id, NOT_ANSWERED, "replace the None in the cell above, run it, then run this cell")
    try:
        message = ex.function(answer, **measured)
    except NotAnswered:
        return Feedback(exercise_id, NOT_ANSWERED, "your function still returns None")
    except Hint as h:
        return Feedback(exercise_id, NOT_QUITE, str(h))
    except Exception as err:  # a half-written function must not stop the notebook
        return Feedback(exercise_id, NOT_QUITE, f"your code raised {type(err).__name__}: {err}")
    return Feedback(exercise_id, WRITTEN if ex.kind == "open" else CORRECT, message or "")


def open_exercise(exercise_id: str, answer: str, title: str) -> None:
    """Register an open question: its check is :func:`open_question` (the model answer is the teacher's)."""
    exercise(exercise_id, answer=answer, title=title, kind="open")(lambda text: open_question(text))


def open_question(answer, *, words: int = 12) -> str:
    """The check of an open question: there is no right string, only a written one. ``answer`` must
    be text of at least ``words`` words; the model answer is in the teacher's copy."""
    if not isinstance(answer, str):
        hint("write your answer as text, between the triple quotes")
    if len(answer.split()) < words:
        hint(f"{len(answer.split())} words: write two or three full sentences (at least {words} words), "
             "with a reason for each claim")
    return ("written down. An open question has no automatic check: compare your answer with your "
            "neighbour's, then with the class discussion")


# --- what a run measured: the recorded contexts of the checks -------------------------------------

#: ``{id: measured}`` of every prediction or reading check called in this Python session (the notebook's
#: kernel), in JSON form; :func:`save_measured` merges it into ``runs/<profile>/metrics.json``, so a
#: published reproduction (``results/<profile>/metrics.json``, key ``exercises``) records what each
#: check compared the students' answers with -- and ``tests/test_exercises.py`` checks the teacher's
#: solutions against it.
MEASURED: dict[str, dict] = {}


def jsonable(value):
    """``value`` as JSON-shaped data: intervals as ``{value, low, high}``, tables as lists of rows,
    NumPy and pandas scalars as numbers."""
    import numpy as np
    import pandas as pd

    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, pd.DataFrame):
        return {"rows": jsonable(value.to_dict(orient="records"))}
    if isinstance(value, pd.Series):
        return jsonable(value.to_dict())
    if hasattr(value, "low") and hasattr(value, "high") and hasattr(value, "value"):
        return {k: jsonable(float(getattr(value, k))) for k in ("value", "low", "high")}  # NaN -> None
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def save_measured(path) -> dict:
    """Merge :data:`MEASURED` into the JSON file ``path`` (``runs/<profile>/metrics.json``) under the key
    ``exercises``; returns what the file now records there."""
    import json

    path = Path(path)
    data = json.loads(path.read_text()) if path.exists() else {}
    data["exercises"] = {**data.get("exercises", {}), **MEASURED}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, allow_nan=False))
    tmp.replace(path)
    return data["exercises"]


# --- the teacher's side: starter cells in the notebooks, solutions in notebooks/solutions/ --------

def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def exercise_cells(notebook) -> dict[str, str]:
    """``{id: source}`` of the cells tagged ``exercise-<id>`` in ``notebook`` (a path or a loaded
    notebook) -- the starter code students see."""
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4) if isinstance(notebook, (str, Path)) else notebook
    cells = {}
    for cell in nb.cells:
        for tag in _tags(cell):
            if tag.startswith("exercise-"):
                ex_id = tag[len("exercise-"):]
                if ex_id in cells:
                    raise ValueError(f"two cells are tagged {tag}")
                cells[ex_id] = cell.source
    return cells


_SECTION = re.compile(r"^# %% (\d\d\.\d+)\b.*$", re.M)


def load_solutions(path: str | Path) -> dict[str, str]:
    """``{id: source}`` from a teacher's solutions file: each ``# %% <id>`` line starts the code that
    replaces the cell tagged ``exercise-<id>`` (text before the first marker is the file's preamble)."""
    text = Path(path).read_text()
    marks = list(_SECTION.finditer(text))
    out = {}
    for m, nxt in zip(marks, marks[1:] + [None]):
        out[m.group(1)] = text[m.end(): nxt.start() if nxt else len(text)].strip("\n") + "\n"
    return out


def with_solutions(notebook, solutions: dict[str, str]):
    """A copy of ``notebook`` (loaded with nbformat) whose exercise cells hold the solutions -- the
    teacher's notebook. Cells without a solution are left as they are."""
    nb = copy.deepcopy(notebook)
    for cell in nb.cells:
        for tag in _tags(cell):
            if tag.startswith("exercise-") and tag[len("exercise-"):] in solutions:
                cell.source = solutions[tag[len("exercise-"):]].rstrip("\n")
    return nb
