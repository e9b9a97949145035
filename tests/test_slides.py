"""``make slides``: reveal.js decks from executed notebooks (bcdet_helpers.slides)."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest

from bcdet_helpers import slides

ROOT = Path(__file__).resolve().parents[1]


def _tiny_executed_notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Title"),
        nbformat.v4.new_code_cell('profile = "smoke"', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_markdown_cell("## First point\n\ntext"),
        nbformat.v4.new_code_cell("1 + 1", execution_count=1, outputs=[
            nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)]),
        nbformat.v4.new_markdown_cell("### A detail"),
        nbformat.v4.new_markdown_cell("## Second point"),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def _sections(html: str) -> int:
    return len(re.findall(r"<section\b", html))


def test_slide_types_of_unmarked_cells():
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    assert slides.slide_type(md("# Chapter")) == "slide"
    assert slides.slide_type(md("## Section")) == "slide"
    assert slides.slide_type(md("### Detail")) == "subslide"
    assert slides.slide_type(md("**Your turn (exercise 03.1)**")) == "subslide"
    assert slides.slide_type(md("plain text")) == "-"
    assert slides.slide_type(code("profile = 'x'", metadata={"tags": ["parameters"]})) == "skip"
    assert slides.slide_type(code("import torch\nfrom torch import nn")) == "skip"
    assert slides.slide_type(code("x = 1")) == "-"


def test_build_decks_renders_executed_notebook_and_falls_back(isolated_runs):
    """No executed notebooks for `class`: the deck comes from the profile that has them."""
    _tiny_executed_notebook(isolated_runs / "smoke" / "notebooks" / "03_tiny.ipynb")
    decks = slides.build_decks("class", ["03"])
    assert [d.name for d in decks] == ["03_tiny.slides.html"]
    assert decks[0].parent == isolated_runs / "smoke" / "slides"
    html = decks[0].read_text()
    assert "reveal" in html.lower()
    assert _sections(html) >= 4  # title, two slides, one sub-slide
    assert "First point" in html and 'profile = "smoke"' not in html  # the parameters cell is skipped
    with pytest.raises(FileNotFoundError, match="no executed notebook 05"):
        slides.build_decks("smoke", ["05"])
    shutil.rmtree(isolated_runs / "smoke" / "slides")


@pytest.mark.parametrize("chapter", ["01", "02", "03"])
def test_course_notebooks_carry_slide_metadata(chapter):
    nb = nbformat.read(next((ROOT / "notebooks").glob(f"{chapter}_*.ipynb")), as_version=4)
    types = [c.metadata.get("slideshow", {}).get("slide_type") for c in nb.cells]
    assert None not in types, "every cell of notebooks 01-03 says how it shows on a slide"
    assert types.count("slide") >= 5


def test_deck_of_notebook_03_from_its_smoke_run(isolated_runs):
    """The real thing: notebook 03's executed smoke copy (left by test_notebooks) renders to a deck."""
    executed = isolated_runs / "executed" / "03_resnet9_residual_blocks.ipynb"
    if not executed.exists():
        pytest.skip("notebook 03 was not executed in this session (test_notebooks deselected)")
    deck = slides.render_deck(executed, isolated_runs / "slides" / "03.slides.html")
    html = deck.read_text()
    assert _sections(html) >= 10 and "data:image/png;base64" in html
