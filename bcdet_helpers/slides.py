"""Reveal.js slide decks of the course notebooks (``make slides``), for teaching in class.

A deck is rendered by nbconvert's ``SlidesExporter`` from an **executed** copy of a notebook --
``runs/<profile>/notebooks/NN_*.ipynb``, which ``bcdet reproduce --profile <profile>`` leaves -- so
the slides show real figures and numbers. Where a cell carries no ``slideshow.slide_type``
metadata, :func:`slide_type` decides (a ``#``/``##`` heading opens a slide, ``###`` or an exercise (*Your turn*) a sub-slide,
the parameters cell and the imports are skipped); notebooks 01-03 carry it already.

    python -m bcdet_helpers.slides                     # profile class, else whatever was executed
    python -m bcdet_helpers.slides --profile laptop 03 # one deck
    python -m bcdet_helpers.slides --execute 03        # run notebook 03 under class first if needed
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

from .errors import BcdetError
from .paths import runs_dir

PROFILE_ORDER = ("class", "laptop", "paper", "smoke")  # the default first, then what may exist


def slide_type(cell) -> str:
    """The reveal.js role of a cell that has none: ``slide``, ``subslide``, ``skip`` or ``-`` (same slide)."""
    tags = cell.get("metadata", {}).get("tags", [])
    source = cell.get("source", "").lstrip()
    if "parameters" in tags or "injected-parameters" in tags:
        return "skip"
    if cell.get("cell_type") == "markdown":
        if source.startswith("# ") or source.startswith("## "):
            return "slide"
        if source.startswith("### ") or source.startswith("**Your turn"):
            return "subslide"
        return "-"
    if cell.get("cell_type") == "code" and source.startswith(("import ", "from ")) and "\n\n" not in source[:400]:
        return "skip"  # the imports cell: boilerplate on a slide
    return "-"


def with_slide_types(nb):
    """A copy of ``nb`` where every cell has ``slideshow.slide_type`` (its own, else :func:`slide_type`)."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        cell.metadata.setdefault("slideshow", {}).setdefault("slide_type", slide_type(cell))
    return nb


def render_deck(notebook: str | Path, out: str | Path) -> Path:
    """Render one (executed) notebook to a reveal.js HTML deck at ``out``; returns the path."""
    import nbformat
    from nbconvert import SlidesExporter

    nb = with_slide_types(nbformat.read(str(notebook), as_version=4))
    html, _ = SlidesExporter().from_notebook_node(nb)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out


def executed_notebooks(profile: str) -> dict[str, Path]:
    """``{"03": path}`` of the executed notebooks a reproduction left in ``runs/<profile>/notebooks``."""
    folder = runs_dir(profile) / "notebooks"
    return {p.name[:2]: p for p in sorted(folder.glob("[0-9][0-9]_*.ipynb"))}


def pick_profile(wanted: str | None) -> str | None:
    """``wanted`` if it has executed notebooks; else the first of :data:`PROFILE_ORDER` that has."""
    for name in ([wanted] if wanted else []) + [p for p in PROFILE_ORDER if p != wanted]:
        if executed_notebooks(name):
            return name
    return None


def execute_missing(profile: str, chapters) -> list[Path]:
    """Execute the course notebooks of ``chapters`` that ``runs/<profile>/notebooks`` lacks (papermill,
    as ``bcdet reproduce`` does); returns the executed copies' paths."""
    from .paths import project_root
    from .reproduce import run_notebook

    have = executed_notebooks(profile)
    done = []
    for nb in sorted((project_root() / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        if nb.name[:2] in chapters and nb.name[:2] not in have:
            out = runs_dir(profile) / "notebooks" / nb.name
            run_notebook(nb, out, profile, echo=False)
            done.append(out)
    return done


def build_decks(profile: str | None = "class", chapters=None, out: str | Path | None = None,
                execute: bool = False) -> list[Path]:
    """Render the decks of ``chapters`` (all executed ones by default) into ``runs/<profile>/slides/``.

    Without executed copies for ``profile`` it falls back to another profile's (:func:`pick_profile`);
    ``execute=True`` instead runs the missing chapters under ``profile`` first."""
    if execute:
        execute_missing(profile, [c.zfill(2) for c in chapters] if chapters else ["01", "02", "03", "04", "05"])
    used = profile if execute else pick_profile(profile)
    if used is None:
        raise FileNotFoundError(
            f"No executed notebooks under {runs_dir()}/<profile>/notebooks. Run "
            f"`bcdet reproduce --profile {profile or 'class'}` (or `make reproduce PROFILE=...`) first.")
    found = executed_notebooks(used)
    chosen = sorted(found) if not chapters else [c.zfill(2) for c in chapters]
    missing = [c for c in chosen if c not in found]
    if missing:
        raise FileNotFoundError(f"no executed notebook {', '.join(missing)} under {runs_dir(used) / 'notebooks'}")
    out = Path(out) if out else runs_dir(used) / "slides"
    return [render_deck(found[c], out / f"{found[c].stem}.slides.html") for c in chosen]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bcdet_helpers.slides", description=__doc__.split("\n\n")[0])
    ap.add_argument("chapters", nargs="*", help="chapter numbers (01 03 ...); default: every executed notebook")
    ap.add_argument("--profile", default="class", help="whose executed notebooks (default class; falls back "
                                                       "to laptop, paper, smoke -- whichever exists)")
    ap.add_argument("--out", help="folder for the decks (default runs/<profile>/slides)")
    ap.add_argument("--execute", action="store_true", help="execute the chosen notebooks under --profile "
                                                           "first where no executed copy exists")
    args = ap.parse_args(argv)
    try:
        decks = build_decks(args.profile, args.chapters, args.out, execute=args.execute)
    except (FileNotFoundError, BcdetError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if decks and decks[0].parent.parent.name != args.profile and not args.out:
        print(f"note: no executed notebooks for profile {args.profile}; used {decks[0].parent.parent.name}")
    for deck in decks:
        print(deck)
    return 0


if __name__ == "__main__":
    sys.exit(main())
