"""``make slides``: offline reveal.js decks, one per chapter, from curated notebooks (bcdet_helpers.research.slides).

The build fails on a remote URL: every deck built here is also scanned for anything it would load from
another host (reveal.js, MathJax, fonts, scripts), so a deck that needs internet access fails the tests."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest

from bcdet_helpers.research import slides
from bcdet_helpers.errors import BcdetError

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
    assert "reveal" in html.lower() and slides.remote_loads(html) == []
    assert (decks[0].parent / "_static" / "reveal.js" / "dist" / "reveal.js").exists()
    assert _sections(html) >= 4  # title, two slides, one sub-slide
    assert "First point" in html and 'profile = "smoke"' not in html  # the parameters cell is skipped
    with pytest.raises(FileNotFoundError, match="no executed notebook 05"):
        slides.build_decks("smoke", ["05"])
    shutil.rmtree(isolated_runs / "smoke" / "slides")


CHAPTERS = ["01", "02", "03", "04", "05", "06"]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_course_notebooks_carry_curated_slide_metadata(chapter):
    """Every cell says how it shows; the decks are curated -- most code is skipped, the figures stay."""
    nb = nbformat.read(next((ROOT / "notebooks").glob(f"{chapter}_*.ipynb")), as_version=4)
    types = [c.metadata.get("slideshow", {}).get("slide_type") for c in nb.cells]
    assert None not in types, f"every cell of notebook {chapter} says how it shows on a slide"
    assert types.count("slide") >= 5
    code = [t for c, t in zip(nb.cells, types) if c.cell_type == "code"]
    assert code.count("skip") >= len(code) / 3, "a deck is not the whole notebook: skip the plumbing"
    assert 3 <= len(code) - code.count("skip"), "the figures that carry the lesson belong on the slides"
    for cell, kind in zip(nb.cells, types):
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith(("**Your turn", "**Open question")):
            assert kind == "subslide", cell.source[:60]
        if any(t.startswith("exercise-") or t == "parameters" for t in cell.metadata.get("tags", [])):
            assert kind == "skip", "starter and parameters cells stay off the slides"


def test_remote_loads_finds_what_a_page_would_fetch():
    page = """<script src="https://cdn.example.org/x.js"></script><link rel="stylesheet" href="//fonts.example/c.css">
    <style>@import url(https://fonts.googleapis.com/css?family=Lato); b { background: url('http://x/y.png') }</style>
    <script type="module">import m from 'https://cdn.example/m.mjs';</script>
    <script>require(["https://unpkg.com/reveal.js@4.0.2/dist/reveal.js"], function () {});</script>
    <a href="https://doi.org/10.1016/j.dib.2019.104863">a citation is a link, not a load</a>
    <script src="_static/reveal.js/dist/reveal.js"></script>"""
    found = slides.remote_loads(page)
    assert len(found) == 6 and not any("doi.org" in f or "_static" in f for f in found)


def test_every_chapter_builds_an_offline_deck(tmp_path):
    """`make slides`: one deck per chapter, reveal.js and MathJax served from the install -- no CDN."""
    decks = slides.build_decks(None, unexecuted=True, out=tmp_path)
    assert [d.name[:2] for d in decks] == CHAPTERS
    static = tmp_path / slides.STATIC
    assert (static / "reveal.js" / "dist" / "reveal.js").exists() and (static / "mathjax" / "MathJax.js").exists()
    for deck in decks:
        html = deck.read_text()
        assert slides.remote_loads(html) == [], deck.name
        assert not any(cdn in html for cdn in ("unpkg.com", "cdnjs.cloudflare.com", "cdn.jsdelivr.net")), deck.name
        assert '<script src="_static/reveal.js/dist/reveal.js">' in html and "_static/mathjax/MathJax.js" in html
        assert _sections(html) >= 8, deck.name
        assert 'profile = "class"' not in html  # the parameters cell is skipped


def test_a_deck_that_needs_the_internet_fails_the_build(tmp_path, monkeypatch):
    monkeypatch.setattr(slides, "TEMPLATE", slides.TEMPLATE.replace(
        "{%- block footer_js -%}", '{%- block footer_js -%}\n<script src="https://unpkg.com/reveal.js@4.0.2/dist/reveal.js"></script>'))
    with pytest.raises(BcdetError, match="would load from the internet"):
        slides.render_deck(next((ROOT / "notebooks").glob("01_*.ipynb")), tmp_path / "01.slides.html")
    assert not (tmp_path / "01.slides.html").exists()


def test_deck_of_notebook_03_from_its_smoke_run(isolated_runs):
    """The real thing: notebook 03's executed smoke copy (left by test_notebooks) renders to a deck."""
    executed = isolated_runs / "executed" / "03_resnet9_residual_blocks.ipynb"
    if not executed.exists():
        pytest.skip("notebook 03 was not executed in this session (test_notebooks deselected)")
    deck = slides.render_deck(executed, isolated_runs / "slides" / "03.slides.html")
    html = deck.read_text()
    assert _sections(html) >= 10 and "data:image/png;base64" in html
    assert slides.remote_loads(html) == []
