"""Where things live: the project root, the BUSI folder and the run folders.

Three environment variables steer everything, so notebooks, the CLI and the tests agree:

* ``BCDET_DATA`` -- a BUSI folder (``Dataset_BUSI_with_GT`` itself, or a folder that contains it).
  Without it we look in ``<project>/data/``.
* ``BCDET_BUSBRA`` -- the external test set BUS-BRA (its folder, or one that contains it); without
  it, ``<project>/data/BUS-BRA``.
* ``BCDET_RUNS`` -- where runs, caches and executed notebooks go. Default ``<project>/runs/``.
  The tests point it at a temporary folder so they never touch a user's runs.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from .busi import BUSI_FOLDER, CLASSES  # noqa: F401  (re-exported: notebooks import CLASSES from here)


def project_root() -> Path:
    """The checkout this package was installed from (editable install), else the working directory.

    Notebooks run with their own folder as working directory, so we cannot rely on ``cwd``.
    """
    here = Path(__file__).resolve().parents[1]
    if (here / "pyproject.toml").exists() and (here / "notebooks").is_dir():
        return here
    cwd = Path.cwd().resolve()
    for folder in (cwd, *cwd.parents):
        if (folder / "pyproject.toml").exists() and (folder / "bcdet_helpers").is_dir():
            return folder
    return cwd


def default_data_dir() -> Path:
    """``$BCDET_DATA`` if set, else ``<project>/data`` (resolved further by :func:`data.locate`)."""
    env = os.environ.get("BCDET_DATA")
    return Path(env).expanduser() if env else project_root() / "data"


def default_busbra_dir() -> Path:
    """``$BCDET_BUSBRA`` if set, else ``<project>/data/BUS-BRA`` (the external test set, issue #30;
    resolved further by :func:`data.locate.find_busbra`)."""
    env = os.environ.get("BCDET_BUSBRA")
    return Path(env).expanduser() if env else project_root() / "data" / "BUS-BRA"


def runs_dir(profile: str | None = None) -> Path:
    """``$BCDET_RUNS`` (or ``<project>/runs``), optionally the sub-folder of one profile."""
    env = os.environ.get("BCDET_RUNS")
    root = Path(env).expanduser() if env else project_root() / "runs"
    return root / profile if profile else root


@contextmanager
def use_runs_dir(folder: str | Path | None):
    """Point ``BCDET_RUNS`` at ``folder`` inside the ``with`` block, then put it back.

    ``None`` changes nothing. Subprocesses started inside (papermill kernels) inherit it.
    """
    if folder is None:
        yield
        return
    old = os.environ.get("BCDET_RUNS")
    os.environ["BCDET_RUNS"] = str(folder)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("BCDET_RUNS", None)
        else:
            os.environ["BCDET_RUNS"] = old
