"""Notebook parameters: a typo is an error that names it, not a warning and the default profile.

papermill has no strict mode. ``papermill -p profil smoke`` only warns ("Passed unknown parameter")
and injects ``profil = "smoke"`` after the ``parameters`` cell, so the notebook quietly runs with
``profile = "laptop"``. Two guards:

* :func:`check_reproduce_parameters` -- ``bcdet reproduce`` reads every notebook's ``parameters``
  cell (papermill's ``inspect_notebook``) before notebook 01 runs and refuses a parameter that the
  notebooks receiving it do not declare.
* :func:`check_parameters` -- one line in each notebook, in the cell after ``parameters``:
  ``check_parameters(globals())``. It compares the names papermill injected with the names the
  parameters cell declares, both read from the kernel's input history (``In``), and raises for any
  injected name that is not declared. Then it brings the course's parameters to their types
  (:func:`normalise_parameters`): ``-p seeds 5`` becomes ``seeds = [5]``.
"""
from __future__ import annotations

import ast
import difflib
import re
from pathlib import Path

from .errors import BcdetError
from .options import check_seed

INJECTED_HEADER = "# Parameters"  # the first line of the cell papermill injects (its Python translator)


def assigned_names(source: str) -> list[str]:
    """Names a cell assigns at top level (``profile = "x"`` -> ``["profile"]``), in order.

    Cells with IPython magics do not parse as Python; for those, ``name = ...`` lines are read.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return re.findall(r"^([A-Za-z_]\w*)\s*(?::[^=]+)?=(?!=)", source, flags=re.M)
    names = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, (ast.AnnAssign, ast.AugAssign)) else []
        names += [t.id for t in targets if isinstance(t, ast.Name)]
    return names


def _unknown_message(unknown: list[str], declared: list[str], where: str) -> str:
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, declared, n=1)
        parts.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    takes = ", ".join(declared) if declared else "no parameters"
    return (f"{where}: unknown parameter(s) {', '.join(parts)}. This notebook takes: {takes}. "
            "Fix the name (papermill -p NAME VALUE) and run again; a misspelt parameter would "
            "otherwise be ignored and the notebook would run with its defaults.")


def check_parameters(namespace: dict) -> None:
    """Raise :class:`BcdetError` when papermill injected a parameter the parameters cell lacks, or
    one of a type the notebook cannot use; bring the others to their types (:func:`normalise_parameters`).

    ``namespace``: the notebook's ``globals()``; its ``In`` holds the source of every cell run so
    far. Cells before the first injected one declare the parameters; injected cells start with
    ``# Parameters``.
    """
    history = [src for src in namespace.get("In", []) if src]
    injected = [i for i, src in enumerate(history) if src.lstrip().startswith(INJECTED_HEADER)]
    if injected:  # (nothing is injected when a person runs the notebook)
        declared = list(dict.fromkeys(n for src in history[: injected[0]] for n in assigned_names(src)))
        given = dict.fromkeys(n for i in injected for n in assigned_names(history[i]))
        unknown = [n for n in given if n not in declared]
        if unknown:
            raise BcdetError(_unknown_message(unknown, declared, "This notebook"))
    normalise_parameters(namespace)


def _one_or_more(name: str, check, example: str):
    """The rule for a list parameter: a single value is a list of one; each item goes through ``check``."""
    def rule(value) -> list:
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        try:
            return [check(v) for v in items]
        except BcdetError as exc:
            raise BcdetError(f"{exc} Several at once: papermill -y \"{name}: {example}\".") from None
    return rule


def _seed(name: str):
    return lambda value: check_seed(value, f"-p {name}")


def _kind(value) -> str:
    from .profiles import KINDS

    if value not in KINDS:
        raise BcdetError(f"-p kinds {value!r}: a kind of folds is one of {', '.join(KINDS)}, e.g. -p kinds grouped.")
    return value


def _arm(name: str):
    def rule(value) -> str:
        from .profiles import ARMS

        if value not in ARMS:
            raise BcdetError(f"-p {name} {value!r}: an arm is one of {', '.join(ARMS)}, e.g. -p {name} switching.")
        return value
    return rule


def _flag(name: str):
    def rule(value) -> bool:
        if not isinstance(value, bool):  # papermill -p makes booleans of True / False only: "true" is a string
            raise BcdetError(f"-p {name} {value!r}: must be True or False (spelt so), e.g. -p {name} True.")
        return value
    return rule


def _profile(value) -> str:
    if not isinstance(value, str):
        raise BcdetError(f"-p profile {value!r}: a profile is a name, e.g. -p profile smoke.")
    return value


# every parameter of the course notebooks' parameters cells -> the rule that brings it to its type
PARAMETER_TYPES = {
    "profile": _profile,
    "study": _flag("study"),
    "seeds": _one_or_more("seeds", _seed("seeds"), "[0, 1]"),
    "kinds": _one_or_more("kinds", _kind, "[grouped, random]"),
    "random_seeds": _one_or_more("random_seeds", _seed("random_seeds"), "[0, 1]"),
    "ladder": _flag("ladder"),
    "arms": _one_or_more("arms", _arm("arms"), "[constant, switching]"),  # chapter 06
    "stress_arms": _one_or_more("stress_arms", _arm("stress_arms"), "[switching]"),
}


def normalise_parameters(namespace: dict) -> None:
    """Bring the course notebooks' parameters in ``namespace`` to their types (:data:`PARAMETER_TYPES`),
    in place; a value that cannot be one raises :class:`BcdetError` naming the parameter and a valid value.

    papermill's ``-p NAME VALUE`` guesses the type from the text: ``-p seeds 5`` injects ``seeds = 5``
    where chapter 05 wants a list (it failed later with ``TypeError: 'int' object is not iterable``),
    so a single seed or kind becomes a list of one; and ``-p study true`` injects the *string*
    "true", which a notebook would take as yes whatever it said, so the flags must be booleans.
    ``None`` keeps a parameter's default meaning and is left alone.
    """
    for name, rule in PARAMETER_TYPES.items():
        if namespace.get(name) is not None:
            namespace[name] = rule(namespace[name])


def declared_parameters(notebook: str | Path) -> list[str]:
    """The names the ``parameters`` cell of ``notebook`` declares (papermill's own reading)."""
    import papermill as pm

    return list(pm.inspect_notebook(str(notebook)))


def check_reproduce_parameters(notebooks, parameters: dict, optional=()) -> dict[Path, list[str]]:
    """Before anything runs: every notebook must declare each of ``parameters``, except the
    ``optional`` ones (a smaller study's ``seeds`` / ``kinds``, which only chapter 05 takes) --
    and those must be declared by at least one notebook. Returns each notebook's declared names.
    """
    declared = {Path(nb): declared_parameters(nb) for nb in notebooks}
    for nb, names in declared.items():
        missing = [p for p in parameters if p not in optional and p not in names]
        if missing:
            raise BcdetError(
                f"{nb}: its parameters cell does not declare {', '.join(map(repr, missing))}, which "
                f"`bcdet reproduce` passes to every notebook (it declares: {', '.join(names) or 'nothing'}; "
                "is the cell tagged 'parameters'?). Fix the parameters cell; nothing was run.")
    for p in optional:
        if p in parameters and not any(p in names for names in declared.values()):
            raise BcdetError(
                f"No notebook declares the parameter {p!r} in its parameters cell, so the smaller study "
                f"(--{p}) would be ignored. Declare `{p} = None` in chapter 05's parameters cell; nothing was run.")
    return declared
