"""Execute every course notebook, in order, with the ``smoke`` profile (papermill).

They share one runs/ folder (the session's ``BCDET_RUNS``), as in ``make reproduce``, so later
chapters reuse the cache and checkpoints of earlier ones. Chapter 06 scores BUS-BRA: the real copy when
``BCDET_BUSBRA`` (or ``data/BUS-BRA``) has one, else a small BUS-BRA-shaped one generated for it
(``tests/fakebusbra.py``), so its external sections always run. A failing cell fails the test with the
notebook and cell named by papermill.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from bcdet_helpers.data.busbra import find_busbra
from bcdet_helpers.research.reproduce import KERNEL

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_course_has_six_chapters():
    assert [nb.name[:2] for nb in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06"], NOTEBOOKS


@pytest.mark.notebook
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_notebook_runs_under_smoke(notebook, busi_dir, isolated_runs, monkeypatch, tmp_path_factory):
    papermill = pytest.importorskip("papermill")
    monkeypatch.setenv("BCDET_DATA", str(busi_dir))  # the kernel inherits it; later tests do not
    if notebook.name.startswith("06") and find_busbra() is None:  # chapter 06 scores BUS-BRA: a made-up one
        from fakebusbra import make_busbra

        monkeypatch.setenv("BCDET_BUSBRA", str(make_busbra(tmp_path_factory.mktemp("busbra"), n_patients=24)))
    out = isolated_runs / "executed" / notebook.name
    out.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(
        str(notebook),
        str(out),
        parameters={"profile": "smoke"},
        kernel_name=KERNEL,
        cwd=str(notebook.parent),
        progress_bar=False,
    )
    assert out.exists()
