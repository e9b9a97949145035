"""Exercises with automatic checks, one module per chapter (``ch01``, ``ch02``, ``ch03``...).

A notebook exercise is two cells: one the student edits (tagged ``exercise-<id>`` so the tests can
read exactly what students see) and one that checks it::

    predicted_accuracy = None  # your prediction: a fraction between 0 and 1
    ...
    check("01.1", predicted_accuracy, counts=counts)

:func:`check` answers with *correct*, *not quite* plus a hint, or *not answered yet* (the answer is
still ``None``, or a function still returns ``None``); an open question (``kind="open"``) answers
*written down* once it holds a few sentences -- its model answer is in the teacher's copy. It never
raises, so "Run all" always reaches the end of a notebook, and it never prints the solution. Each
exercise has a ``kind`` (:data:`KINDS`: predict, read, code, open); every chapter climbs from a
prediction to a real coding task and ends with an open question.

What a prediction or a reading was checked against is written down: :func:`check` keeps it in
:data:`MEASURED`, each notebook's last cell merges it into ``runs/<profile>/metrics.json`` with
:func:`save_measured`, and :mod:`bcdet_helpers.research.recorded` reads it back from ``results/`` --
so the teacher's solutions are tested against the recorded runs.

Solutions are not in this package: they live in the teacher's copy ``notebooks/solutions/chNN.py``,
one ``# %% <id>`` section per exercise, which replaces the student's cell
(:func:`load_solutions`, :func:`with_solutions`). ``tests/test_exercises.py`` injects every
solution and asserts that its check passes, and asserts that the notebook's untouched starter
code does not -- so no check can pass vacuously.

A new chapter adds ``chNN.py`` with ``@exercise("NN.k", answer="name")`` functions; it is found and
registered on import (:data:`CHAPTERS`), nothing else changes. Its solutions go to
``notebooks/solutions/chNN.py``; a check that needs a measurement gets it from
:mod:`bcdet_helpers.research.recorded` in the test, a code exercise's inputs from ``SYNTHETIC`` there.
"""
import importlib
import pkgutil
import re

from .core import (EXERCISES, KINDS, MEASURED, Exercise, Feedback, NotAnswered, check, exercise, exercise_cells,
                   load_solutions, open_question, save_measured, with_solutions)

#: the chapters with exercises: every ``chNN`` module here, imported (which registers its checks)
CHAPTERS = tuple(sorted(m.name[2:] for m in pkgutil.iter_modules(__path__) if re.fullmatch(r"ch\d\d", m.name)))
for _chapter in CHAPTERS:
    importlib.import_module(f".ch{_chapter}", __name__)

__all__ = ["EXERCISES", "KINDS", "MEASURED", "Exercise", "Feedback", "NotAnswered", "check", "exercise",
           "exercise_cells", "load_solutions", "open_question", "save_measured", "with_solutions", "CHAPTERS"]
