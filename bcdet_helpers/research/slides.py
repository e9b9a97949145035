"""Reveal.js slide decks of the course notebooks (``make slides``), for teaching in class -- offline.

One deck per chapter, rendered by nbconvert's ``SlidesExporter`` from an **executed** copy of the
notebook -- ``runs/<profile>/notebooks/NN_*.ipynb``, which ``bcdet reproduce --profile <profile>``
leaves -- so the slides show real figures and numbers.

**Curated, not whole notebooks.** Every cell of the course notebooks carries
``slideshow.slide_type``: the chapter's story (headings, the key paragraphs, every *Your turn*) are
slides and sub-slides, the figures that carry the lesson show their output (code cells show no code on
a slide unless tagged ``slides-code``), and the rest is ``skip``. Cells without the metadata (an
injected-parameters cell) get :func:`slide_type`'s guess.

**Offline.** A deck loads nothing from the internet: reveal.js comes from the PyPI package
``pyRevealjs`` (it ships reveal.js 4.0.2, MIT -- the version nbconvert's template targets) and MathJax 2.7
from ``jupyter-server-mathjax``, both installed by ``make setup`` and copied next to the decks
(``_static/``); the template drops the CDN scripts nbconvert's reveal template loads (require.js,
jQuery, mermaid, widgets). :func:`remote_loads` lists
whatever a deck would still fetch, and a build with any fails (:class:`~bcdet_helpers.errors.BcdetError`).

    python -m bcdet_helpers.research.slides                      # profile class, else whatever was executed
    python -m bcdet_helpers.research.slides --profile laptop 03  # one deck
    python -m bcdet_helpers.research.slides --execute 03         # run notebook 03 under class first if needed
    python -m bcdet_helpers.research.slides --unexecuted         # decks of the committed notebooks (no outputs)
"""
from __future__ import annotations

import argparse
import copy
import importlib.util
import re
import shutil
import sys
from pathlib import Path

from ..errors import BcdetError
from ..paths import runs_dir

PROFILE_ORDER = ("class", "laptop", "paper", "smoke")  # the default first, then what may exist
STATIC = "_static"  # beside the decks: reveal.js and MathJax, shared by every deck of the folder
REVEAL_THEME = "white"  # its fonts ship with reveal.js (no web-font import)
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"  # the configuration jupyter-server-mathjax ships

# nbconvert's reveal template, minus everything it fetches from a CDN: require.js, jQuery, mermaid and
# the widget manager (the decks use none of them), reveal.js loaded with plain <script> tags instead.
TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_css -%}
<style>
/* long slides scroll instead of being cut off */
.reveal .slides > section, .reveal .slides > section > section { overflow-y: auto; max-height: 100%; }
.reveal .jp-RenderedImage img { max-height: 560px; }
</style>
{%- endblock html_head_css -%}
{%- block footer_js -%}
<script src="{{ resources.reveal.url_prefix }}/dist/reveal.js"></script>
<script src="{{ resources.reveal.url_prefix }}/plugin/notes/notes.js"></script>
<script>
Reveal.initialize({
  controls: true, progress: true, history: true, center: false,
  transition: "{{ resources.reveal.transition or 'slide' }}",
  slideNumber: "{{ resources.reveal.number or 'c/t' }}",
  width: {{ resources.reveal.width or 1100 }}, height: {{ resources.reveal.height or 760 }},
  plugins: [RevealNotes]
});
Reveal.addEventListener('slidechanged', function () {
  if (window.MathJax && MathJax.Hub) { MathJax.Hub.Rerender(Reveal.getCurrentSlide()); }
});
</script>
{%- endblock footer_js -%}
"""


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
    """A copy of ``nb`` where every cell has ``slideshow.slide_type`` (its own, else :func:`slide_type`) and
    code cells on a slide show their output only (the code stays in the notebook), unless tagged ``slides-code``."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        kind = cell.metadata.setdefault("slideshow", {}).setdefault("slide_type", slide_type(cell))
        if cell.cell_type == "code" and kind != "skip" and "slides-code" not in cell.metadata.get("tags", []):
            cell.metadata.setdefault("transient", {})["remove_source"] = True
    return nb


# ------------------------------------------------------------------------------------ offline assets
def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)  # finds the package without importing it
    return Path(spec.origin).parent if spec and spec.origin else None


def reveal_dist() -> Path:
    """The reveal.js distribution installed with ``pyRevealjs`` (``dist/``, ``plugin/``)."""
    base = _package_dir("pyRevealjs")
    found = sorted(base.glob("assets/revealjsdist*")) if base else []
    for folder in reversed(found):
        if (folder / "dist" / "reveal.js").exists() and (folder / "plugin" / "notes" / "notes.js").exists():
            return folder
    raise BcdetError("reveal.js is not installed, so the decks cannot work offline: `make setup` installs it "
                     "(the PyPI package pyRevealjs, listed in pyproject.toml).")


def mathjax_dir() -> Path:
    """MathJax 2.7 as ``jupyter-server-mathjax`` installs it (``MathJax.js``, ``config/``, ``jax/``, ``fonts/``)."""
    base = _package_dir("jupyter_server_mathjax")
    folder = base / "static" if base else None
    if folder is None or not (folder / "MathJax.js").exists():
        raise BcdetError("MathJax is not installed, so the decks' formulas cannot render offline: `make setup` "
                         "installs it (the PyPI package jupyter-server-mathjax, listed in pyproject.toml).")
    return folder


def copy_assets(out: str | Path) -> Path:
    """Copy reveal.js (its ``dist/`` and the notes plugin) and MathJax into ``out/_static/``; returns that folder.
    Copies only what is missing, so a second build is quick."""
    static = Path(out) / STATIC
    reveal, mathjax = reveal_dist(), mathjax_dir()
    for src, dst in ((reveal / "dist", static / "reveal.js" / "dist"),
                     (reveal / "plugin" / "notes", static / "reveal.js" / "plugin" / "notes"),
                     (mathjax, static / "mathjax")):
        if not dst.exists():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.map", "__pycache__", "*.esm.js"))
    return static


_URL = r"""["']?\s*(?:https?:)?//"""
_REMOTE = [
    re.compile(r"<(?:script|link|img|iframe|source|embed|audio|video)\b[^>]*?\b(?:src|href)\s*=\s*" + _URL, re.I | re.S),
    re.compile(r"@import\s+(?:url\()?\s*" + _URL, re.I),
    re.compile(r"url\(\s*" + _URL, re.I),
    re.compile(r"\bimport\s[^;\n]*?\bfrom\s+" + _URL, re.I),
    re.compile(r"\brequire\(\s*\[[^\]]*?" + _URL, re.I | re.S),
]


def remote_loads(html: str) -> list[str]:
    """What a page (HTML, or a style sheet) would fetch from another host: script and style sources,
    images, CSS ``@import`` / ``url()``, ES module imports and require.js paths. Plain links (``<a href>``)
    are not loads and are not listed."""
    hits = sorted((m.start(), m.end(), m.group(0)[:160]) for pattern in _REMOTE for m in pattern.finditer(html))
    found, end = [], -1
    for start, stop, text in hits:  # one fetch matched by two patterns (@import url(...)) counts once
        if stop > end:
            found.append(text)
            end = stop
    return found


def _deck_remote_loads(html: str, folder: Path) -> list[str]:
    """:func:`remote_loads` of a deck and of the local style sheets it links."""
    found = remote_loads(html)
    for href in re.findall(r"""<link\b[^>]*\bhref\s*=\s*["']([^"']+\.css)["']""", html, re.I):
        sheet = folder / href
        if sheet.exists():
            found += [f"{href}: {hit}" for hit in remote_loads(sheet.read_text(encoding="utf-8", errors="replace"))]
    return found


def exporter():
    """nbconvert's ``SlidesExporter`` set up for offline decks (local reveal.js and MathJax, no CDN scripts)."""
    from jinja2 import DictLoader
    from nbconvert import SlidesExporter

    ex = SlidesExporter(extra_loaders=[DictLoader({"bcdet_offline.html.j2": TEMPLATE})])
    ex.template_file = "bcdet_offline.html.j2"
    ex.reveal_url_prefix = f"{STATIC}/reveal.js"
    ex.reveal_theme = REVEAL_THEME
    ex.mathjax_url = f"{STATIC}/mathjax/MathJax.js?config={MATHJAX_CONFIG}"
    ex.require_js_url = ex.jquery_url = ex.mermaid_js_url = ""  # not loaded: the template has no such script
    ex.exclude_input_prompt = ex.exclude_output_prompt = True
    return ex


def render_deck(notebook: str | Path, out: str | Path) -> Path:
    """Render one notebook (executed, for real figures) to an offline reveal.js deck at ``out``, its assets
    copied to ``out``'s folder; returns the path. Refuses (:class:`BcdetError`) a deck that would load
    anything from the internet."""
    import nbformat

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    copy_assets(out.parent)
    nb = with_slide_types(nbformat.read(str(notebook), as_version=4))
    html, _ = exporter().from_notebook_node(nb)
    remote = _deck_remote_loads(html, out.parent)
    if remote:
        raise BcdetError(f"the deck of {Path(notebook).name} would load from the internet: {remote[:3]}")
    out.write_text(html, encoding="utf-8")
    return out


def executed_notebooks(profile: str) -> dict[str, Path]:
    """``{"03": path}`` of the executed notebooks a reproduction left in ``runs/<profile>/notebooks``."""
    folder = runs_dir(profile) / "notebooks"
    return {p.name[:2]: p for p in sorted(folder.glob("[0-9][0-9]_*.ipynb"))}


def course_notebooks() -> dict[str, Path]:
    """``{"03": path}`` of the committed course notebooks (no outputs)."""
    from ..paths import project_root

    return {p.name[:2]: p for p in sorted((project_root() / "notebooks").glob("[0-9][0-9]_*.ipynb"))}


def pick_profile(wanted: str | None) -> str | None:
    """``wanted`` if it has executed notebooks; else the first of :data:`PROFILE_ORDER` that has."""
    for name in ([wanted] if wanted else []) + [p for p in PROFILE_ORDER if p != wanted]:
        if executed_notebooks(name):
            return name
    return None


def execute_missing(profile: str, chapters) -> list[Path]:
    """Execute the course notebooks of ``chapters`` that ``runs/<profile>/notebooks`` lacks (papermill,
    as ``bcdet reproduce`` does); returns the executed copies' paths."""
    from .reproduce import run_notebook

    have = executed_notebooks(profile)
    done = []
    for ch, nb in course_notebooks().items():
        if ch in chapters and ch not in have:
            out = runs_dir(profile) / "notebooks" / nb.name
            run_notebook(nb, out, profile, echo=False)
            done.append(out)
    return done


def build_decks(profile: str | None = "class", chapters=None, out: str | Path | None = None,
                execute: bool = False, unexecuted: bool = False) -> list[Path]:
    """Render the decks of ``chapters`` (all executed ones by default) into ``runs/<profile>/slides/``.

    Without executed copies for ``profile`` it falls back to another profile's (:func:`pick_profile`);
    ``execute=True`` instead runs the missing chapters under ``profile`` first; ``unexecuted=True``
    renders the committed notebooks (no figures: to check the decks' structure) into ``runs/slides/``."""
    if unexecuted:
        found = course_notebooks()
        out = Path(out) if out else runs_dir() / "slides"
    else:
        if execute:
            execute_missing(profile, [c.zfill(2) for c in chapters] if chapters else list(course_notebooks()))
        used = profile if execute else pick_profile(profile)
        if used is None:
            raise FileNotFoundError(
                f"No executed notebooks under {runs_dir()}/<profile>/notebooks. Run "
                f"`bcdet reproduce --profile {profile or 'class'}` (or `make reproduce PROFILE=...`) first, "
                "or `make slides ARGS=--execute`.")
        found = executed_notebooks(used)
        out = Path(out) if out else runs_dir(used) / "slides"
    chosen = sorted(found) if not chapters else [c.zfill(2) for c in chapters]
    missing = [c for c in chosen if c not in found]
    if missing:
        raise FileNotFoundError(f"no executed notebook {', '.join(missing)} under {runs_dir() if unexecuted else runs_dir(used) / 'notebooks'}")
    return [render_deck(found[c], out / f"{found[c].stem}.slides.html") for c in chosen]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bcdet_helpers.research.slides", description=__doc__.split("\n\n")[0])
    ap.add_argument("chapters", nargs="*", help="chapter numbers (01 03 ...); default: every executed notebook")
    ap.add_argument("--profile", default="class", help="whose executed notebooks (default class; falls back "
                                                       "to laptop, paper, smoke -- whichever exists)")
    ap.add_argument("--out", help="folder for the decks (default runs/<profile>/slides)")
    ap.add_argument("--execute", action="store_true", help="execute the chosen notebooks under --profile "
                                                           "first where no executed copy exists")
    ap.add_argument("--unexecuted", action="store_true", help="decks of the committed notebooks (no outputs), "
                                                              "to check the slides' structure")
    args = ap.parse_args(argv)
    try:
        decks = build_decks(args.profile, args.chapters, args.out, execute=args.execute, unexecuted=args.unexecuted)
    except (FileNotFoundError, BcdetError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if decks and not args.unexecuted and decks[0].parent.parent.name != args.profile and not args.out:
        print(f"note: no executed notebooks for profile {args.profile}; used {decks[0].parent.parent.name}")
    for deck in decks:
        print(deck)
    if decks:
        print(f"open one in a browser (no internet needed): reveal.js and MathJax are in {decks[0].parent / STATIC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
