"""The shape of the package (issue #18): no import cycle, one BUSI record, one preprocessing step,
every command handler beside the CLI; and (issue #32) dependencies that point one way --
cli -> commands -> the domain modules, research -> the course core -- with no module-level
``__getattr__`` forwarding old names, and a README that names the core's size."""
from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bcdet_helpers"
RESEARCH = PACKAGE / "research"  # the study, tuning, publishing, the CLI; the rest of PACKAGE is the course core


# ------------------------------------------------------------------------------- import cycles
def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_import_module(node) -> bool:
    """``importlib.import_module(...)``, ``import_module(...)`` or ``__import__(...)``."""
    func = getattr(node, "func", None)
    return isinstance(node, ast.Call) and (getattr(func, "attr", None) or getattr(func, "id", None)) in (
        "import_module", "__import__")


def imported_modules(path: Path, paths) -> set[str]:
    """The modules ``path`` imports, at module level *or inside a function*, plus the constant names
    it hands to ``importlib.import_module`` (a string import is still an import: the forwarders of
    issue #32 reached the CLI that way). ``from a import b`` names ``a.b`` when that is a module."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def absolute(level: int, module: str | None) -> str:
        if not level:
            return module or ""
        base = package.split(".")[: len(package.split(".")) - (level - 1)]
        return ".".join(base + ([module] if module else []))

    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            mod = absolute(node.level, node.module)
            for alias in node.names:
                targets.add(f"{mod}.{alias.name}" if f"{mod}.{alias.name}" in paths else mod)
        elif isinstance(node, ast.Import):
            targets |= {a.name for a in node.names}
        elif _is_import_module(node) and node.args and isinstance(node.args[0], ast.Constant):
            text = str(node.args[0].value)
            dots = len(text) - len(text.lstrip("."))
            targets.add(absolute(dots, text[dots:] or None))
    return targets


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (:func:`imported_modules`; a lazy import is still a
    dependency: the index <-> duplicates cycle of issue #18 was one). Importing ``a.b.c`` also runs
    ``a.b``'s ``__init__``, so that is an edge too."""
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in paths.items():
        targets = imported_modules(path, paths)
        edges = set()
        for t in targets:
            while t:  # the module and every package above it
                if t in paths and t != name:
                    edges.add(t)
                t = t.rpartition(".")[0]
        graph[name] = edges - {n for n in edges if name.startswith(n + ".")}  # a module's own parents run first anyway
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_among_package_modules():
    graph = import_graph()
    assert "bcdet_helpers.data.similarity" in graph["bcdet_helpers.data.index"]
    assert not cycles(graph), f"import cycles: {cycles(graph)}"


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


# ---------------------------------------------------------------------------------- module sizes
MAX_LINES = 350
ON_PURPOSE = "Over 350 lines on purpose:"


def unexplained_long_modules(paths) -> list[str]:
    """The modules of ``paths`` over :data:`MAX_LINES` lines whose docstring gives no reason after
    :data:`ON_PURPOSE` (a sentence of at least five words, not the phrase alone)."""
    found = []
    for path in sorted(paths):
        text = Path(path).read_text()
        if len(text.splitlines()) <= MAX_LINES:
            continue
        doc = ast.get_docstring(ast.parse(text)) or ""
        if len(doc.partition(ON_PURPOSE)[2].split()) < 5:
            found.append(f"{Path(path).name} ({len(text.splitlines())} lines)")
    return found


def test_no_module_is_over_350_lines_without_a_reason_in_its_docstring():
    """Issue #32: a module that mixes jobs is split by job; one that stays over :data:`MAX_LINES` lines
    says why in its docstring, after :data:`ON_PURPOSE`."""
    unexplained = unexplained_long_modules(PACKAGE.rglob("*.py"))
    assert not unexplained, f"over {MAX_LINES} lines with no {ON_PURPOSE!r} reason in the docstring: {unexplained}"


def test_the_size_check_finds_a_long_module_without_a_reason(tmp_path):
    body = "x = 1\n" * MAX_LINES
    (tmp_path / "short.py").write_text('"""Short."""\n' + "x = 1\n" * (MAX_LINES - 1))
    (tmp_path / "bare.py").write_text(f'"""Long.\n\n{ON_PURPOSE}\n"""\n' + body)
    (tmp_path / "said.py").write_text(f'"""Long.\n\n{ON_PURPOSE} one table, kept whole on purpose.\n"""\n' + body)
    (tmp_path / "none.py").write_text(body + "y = 2\n")
    assert unexplained_long_modules(tmp_path.glob("*.py")) == [f"bare.py ({MAX_LINES + 4} lines)",
                                                               f"none.py ({MAX_LINES + 1} lines)"]


# ----------------------------------------------------------------------------------- BUSI record
def test_one_busi_record_everywhere():
    from bcdet_helpers import busi, paths, profiles
    from bcdet_helpers.data import check, download, folders, index, locate, splitdata

    for module in (paths, profiles, check, folders, index, locate, splitdata):
        assert module.CLASSES is busi.CLASSES, module.__name__
    assert paths.BUSI_FOLDER == busi.BUSI["folder"]
    assert check.EXPECTED_IMAGES is busi.BUSI["images"]
    assert download.DEFAULT_URL == busi.BUSI["url"]
    assert busi.BUSI["homepage"] in locate.BY_HAND and busi.BUSI_FOLDER in locate.BY_HAND
    assert "Data in Brief 28:104863, 2020" in busi.BUSI["citation"]
    assert sum(busi.BUSI["images"].values()) == 780
    assert check.parse_name("benign (3)_mask_1.png") == ("benign", 3, 1)
    assert check.parse_name("normal (12).png") == ("normal", 12, None)


@pytest.mark.realdata
def test_the_busi_record_matches_the_real_copy(real_busi):
    from bcdet_helpers.busi import BUSI
    from bcdet_helpers.data.check import check_dataset

    report = check_dataset(real_busi)
    assert report.images == dict(BUSI["images"])
    assert report.masks == dict(BUSI["masks"])


# -------------------------------------------------------------------------------- preprocessing
def test_one_preprocessing_step_bit_identical_to_the_recorded_formula():
    torch = pytest.importorskip("torch")
    from bcdet_helpers.batches import Batches
    from bcdet_helpers.data import SplitData
    from bcdet_helpers.data.preprocess import normalize
    from bcdet_helpers.evaluate import predict_proba
    from bcdet_helpers.model import ResNet9

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (10, 1, 16, 16), dtype=torch.uint8, generator=g)
    split = np.array(["train"] * 6 + ["val"] * 4)
    mean, std = SplitData.train_stats(images, split)
    data = SplitData(images=images, labels=torch.arange(10) % 3, files=[str(i) for i in range(10)],
                     parts=split, mean=mean, std=std)
    recorded = images.float().div_(255.0)  # what every recorded run computed
    recorded = (recorded - mean) / std
    assert torch.equal(normalize(images, mean, std), recorded)
    assert torch.equal(data.normalize(images), recorded)
    batches = Batches(data, batch_size=4, seed=0, device=torch.device("cpu"), augment=False)
    assert torch.equal(batches.prepare(images), recorded)
    before = images.clone()
    normalize(images, mean, std)
    assert torch.equal(images, before)  # the input is never modified

    torch.manual_seed(0)
    model = ResNet9(in_channels=1, width=4, zero_head=False).eval()
    with torch.no_grad():
        expected = torch.softmax(model(recorded), 1).numpy()
    np.testing.assert_allclose(predict_proba(model, images, mean, std), expected, rtol=0, atol=1e-6)


# ------------------------------------------------------------------ cli -> commands -> the domain
COMMAND_MODULES = tuple(f"bcdet_helpers.research.{m}" for m in ("commands", "commands_study", "commands_records"))
UPPER = {"bcdet_helpers.research.cli": set(), **{m: {"bcdet_helpers.research.cli"} for m in COMMAND_MODULES}}  # who may import it


def test_no_module_below_the_cli_imports_it():
    """Issue #32: the data and scoring modules reached up to ``commands`` (through the forwarders'
    ``importlib`` calls) and ``commands`` back down: a circle of 14 modules at run time. Only
    ``cli`` imports ``commands`` (and its siblings split by job, ``commands_study`` and
    ``commands_records``), nobody imports ``cli`` -- not at module level, not inside a function,
    not as a string handed to ``importlib``, not as a module name spelt out in full."""
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    found = []
    for name, path in sorted(paths.items()):
        targets = imported_modules(path, paths)
        strings = {n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant)}
        for upper, allowed in UPPER.items():
            if name != upper and name not in allowed and (upper in targets or upper in strings):
                found.append(f"{path.relative_to(PACKAGE.parent)} -> {upper}")
    assert not found, f"modules below the CLI that import it: {found}"


def test_computed_imports_stay_inside_their_own_package():
    """An ``import_module`` whose name is computed cannot be checked above: only the CLI's handler
    table and a package ``__init__`` loading its own submodules (``import_module(x, __name__)``) may."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not _is_import_module(node) or (node.args and isinstance(node.args[0], ast.Constant)):
                continue
            own = (path.name == "__init__.py" and len(node.args) == 2
                   and getattr(node.args[1], "id", None) in ("__name__", "__package__"))
            if path != RESEARCH / "cli.py" and not own:
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not found, f"computed imports: {found}"


_IMPORT_ONE_BY_ONE = """
import importlib, json, sys
upper = json.loads(sys.argv[2])
out = {"pulled_in": {}, "missing_dependency": {}}
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:  # an optional third-party package, not ours
        if (exc.name or "").startswith("bcdet_helpers"):
            raise
        out["missing_dependency"][name] = exc.name
        continue
    hit = [m for m in upper if m in sys.modules]
    if hit:
        out["pulled_in"][name] = hit
        break
print(json.dumps(out))
"""


def test_importing_any_module_below_the_cli_does_not_load_it():
    """The run-time check of the static one above: every module of the package but ``cli`` and the
    command modules, imported one after another in a fresh interpreter, leaves all of them unloaded."""
    names = sorted(_module_name(p) for p in PACKAGE.rglob("*.py"))
    names = [n for n in names if n not in UPPER]
    assert "bcdet_helpers.data.duplicates" in names and "bcdet_helpers.evaluate" in names
    proc = subprocess.run([sys.executable, "-c", _IMPORT_ONE_BY_ONE, json.dumps(names), json.dumps(sorted(UPPER))],
                          capture_output=True, text=True, cwd=PACKAGE.parent, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not out["pulled_in"], f"importing this loads the CLI: {out['pulled_in']}"


# a package __init__ that loads its own tensor-side submodules on first use, so that
# ``bcdet data check`` never pays for ``import torch`` -- the one module-level __getattr__ allowed
LAZY_PACKAGES = {"bcdet_helpers/data/__init__.py"}


def test_no_module_forwards_names_through_a_module_getattr():
    """Issue #32: ``train``, ``evaluate``, ``reproduce`` and ``data.duplicates`` forwarded old names
    (``train.train_run``, ``evaluate.cli_predict`` ...) through ``__getattr__``, which hid the real
    map. Every name is imported from its home module now."""
    found = [str(p.relative_to(PACKAGE.parent)) for p in sorted(PACKAGE.rglob("*.py"))
             if any(isinstance(n, ast.FunctionDef) and n.name == "__getattr__" for n in ast.parse(p.read_text()).body)]
    assert set(found) <= LAZY_PACKAGES, f"module-level __getattr__: {sorted(set(found) - LAZY_PACKAGES)}"
    from bcdet_helpers import data

    assert all(target.startswith(".") for target in data._LAZY.values())  # its own submodules only


@pytest.mark.parametrize("module, name, home", [
    ("bcdet_helpers.train", "run_dir_for", "bcdet_helpers.runs"),
    ("bcdet_helpers.train", "train_run", "bcdet_helpers.runs"),
    ("bcdet_helpers.train", "load_run", "bcdet_helpers.runs"),
    ("bcdet_helpers.train", "load_checkpoint", "bcdet_helpers.checkpoints"),
    ("bcdet_helpers.train", "cli_train", "bcdet_helpers.research.commands"),
    ("bcdet_helpers.evaluate", "cli_predict", "bcdet_helpers.research.commands"),
    ("bcdet_helpers.evaluate", "cli_evaluate", "bcdet_helpers.research.commands"),
    ("bcdet_helpers.evaluate", "TEACHING_REMINDER", "bcdet_helpers.research.commands"),
    ("bcdet_helpers.research.reproduce", "cli_reproduce", "bcdet_helpers.research.commands"),
    ("bcdet_helpers.data.duplicates", "cli_duplicates", "bcdet_helpers.research.commands"),
])
def test_a_forwarded_name_lives_in_its_home_module_only(module, name, home):
    assert not hasattr(importlib.import_module(module), name), f"{module}.{name}: import it from {home}"
    assert getattr(importlib.import_module(home), name) is not None


# ------------------------------------------------------------------ commands and re-exported names
def test_every_command_handler_lives_beside_the_cli():
    from bcdet_helpers.research import cli

    for key, (module, func) in cli.HANDLERS.items():
        assert module in COMMAND_MODULES, key
        assert callable(getattr(importlib.import_module(module), func)), key
    assert set(cli.COMMANDS) == set(cli.HANDLERS) and len(cli.COMMANDS) == len(set(cli.COMMANDS))
    homes = {f"{m.rpartition('.')[2]}.py" for m in COMMAND_MODULES}
    domain = [p for p in PACKAGE.rglob("*.py") if p.parent != RESEARCH or p.name not in homes | {"cli.py"}]
    defined = [f"{p.relative_to(PACKAGE)}: {n.name}" for p in domain for n in ast.parse(p.read_text()).body
               if isinstance(n, ast.FunctionDef) and n.name.startswith("cli_")]
    assert not defined, f"command handlers outside the command modules: {defined}"
    for module in COMMAND_MODULES:  # each cli_* function of a command module is the handler cli names there
        path = RESEARCH / f"{module.rpartition('.')[2]}.py"
        own = {n.name for n in ast.parse(path.read_text()).body
               if isinstance(n, ast.FunctionDef) and n.name.startswith("cli_")}
        assert own == {f for m, f in cli.HANDLERS.values() if m == module}, module


OLD_EVALUATE_NAMES = [
    "BcdetError", "CLASSES", "Evaluation", "IMAGE_SUFFIXES", "PUBLISHED", "accuracy",
    "bootstrap_ci", "cam_mass_in_mask", "evaluate_run", "expected_calibration_error",
    "folder_dataset", "grad_cam", "jsonable", "last_conv_block", "lesion_mask", "load_images", "macro_f1", "metrics",
    "paired_comparison", "parse_map", "predict_proba", "reliability", "roc_curves", "single_class_warning",
    "upsample_cam",
]


@pytest.mark.parametrize("name", OLD_EVALUATE_NAMES)
def test_every_old_name_of_evaluate_still_imports(name):
    """Notebooks and the study code write ``ev.<name>``; the split must not break one of them."""
    from bcdet_helpers import evaluate

    assert getattr(evaluate, name) is not None


@pytest.mark.parametrize("module, name", [
    ("bcdet_helpers.data.duplicates", "thumbnail"),
    ("bcdet_helpers.data.duplicates", "THRESHOLD"), ("bcdet_helpers.paths", "CLASSES"),
    ("bcdet_helpers.data.augment", "AUGMENT"),
])
def test_old_import_paths_keep_working(module, name):
    assert getattr(importlib.import_module(module), name) is not None


def test_parts_kinds_and_arms_have_one_name_each():
    """``arm`` = what the study compares; ``kind`` = grouped / random (how folds are drawn); ``parts`` =
    train / val / test (issue #32: no second name for any of them)."""
    torch = pytest.importorskip("torch")
    from bcdet_helpers import profiles
    from bcdet_helpers.data import SplitData
    from bcdet_helpers.data.splitdata import PARTS

    assert profiles.KINDS == ("grouped", "random") and PARTS == ("train", "val", "test")
    assert not hasattr(profiles, "SPLITS") and not hasattr(profiles, "SCHEDULES")
    fields = profiles.Profile.__dataclass_fields__
    assert {"arms", "kinds"} <= set(fields) and not {"schedules", "splits"} & set(fields)
    data = SplitData(images=torch.zeros(3, 1, 4, 4, dtype=torch.uint8), labels=torch.zeros(3, dtype=torch.long),
                     files=["a", "b", "c"], parts=np.array(["train", "val", "test"]))
    assert list(data.parts) == ["train", "val", "test"] and not hasattr(data, "split")


# ------------------------------------------------------------------- the README (issue #27, case 9)
ROOT = PACKAGE.parent
README = ROOT / "README.md"
TOP_LEVEL = {"notebooks", "bcdet_helpers", "environment.yml", "tests", "Makefile", "README.md", "pyproject.toml",
             "benchmarks", "results", "docs", ".ci", ".gitignore"}


def test_the_top_level_holds_only_what_the_layout_names():
    """DESIGN.md's layout, plus ``docs/`` (the README's long pages, issue #27); ignored paths (``.venv``,
    ``runs``, ``data``...) do not count."""
    import shutil
    import subprocess

    names = sorted(p.name for p in ROOT.iterdir() if p.name != ".git")
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: cannot tell ignored paths from the layout")
    ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", *names], capture_output=True, text=True).stdout
    extra = set(names) - set(ignored.split()) - TOP_LEVEL
    assert not extra, f"top-level entries the layout does not name: {sorted(extra)}"
    assert (ROOT / "docs" / "results.md").is_file()


def test_the_readme_opens_with_what_it_is_the_two_commands_and_the_findings():
    lines = README.read_text().splitlines()
    head = "\n".join(lines[:30])
    for command in ("make reproduce", "make test", "make reproduce PROFILE=class"):
        assert any(ln.startswith(command + " ") for ln in lines[:30]), f"{command!r} is not in the README's first 30 lines"
    assert "## The two commands" in head and "## What we found" in head  # the findings right after them
    at = lines.index("## What we found")
    assert "docs/results.md" in "\n".join(lines[at:at + 20])  # in a few lines, the long form one click away
    assert len(lines) < 400, f"the README is {len(lines)} lines: long tables belong in docs/"


def test_the_long_results_and_timings_live_one_click_away():
    readme, results = README.read_text(), (ROOT / "docs" / "results.md").read_text()
    for heading in ("## What we found", "## Time", "## Speed", "## Results",
                    "### `paper` profile: the verdict at the paper's width, on an NVIDIA H100",
                    "### How far do common habits inflate a BUSI number?"):
        assert heading in results, heading
    assert "](docs/results.md" in readme
    # the tables are there, not here: the per-arm verdict rows, the ladder's rungs, the speed table
    for row in ("| `switching` − `decay` |", "| + one lucky fold of five reported", "| floor: fwd + bwd + step"):
        assert row in results and row not in readme, row
    # the README's Time paragraph is prose a newcomer reads: no commit hashes, no test counts
    section = readme.split("## First time", 1)[1].split("\n## ", 1)[0]
    time_par = section[section.index("- **Time.**"):].split("\n- **", 1)[0]
    import re

    assert not re.search(r"\b[0-9a-f]{7}\b", time_par), time_par
    assert "docs/results.md#time" in time_par
    # every relative link of the moved page still points at something
    for target in re.findall(r"\]\((\.\./[^)#]+)", results):
        assert (ROOT / "docs" / target).resolve().exists(), target


# ------------------------------------------------------------- the course core and research (issue #32)
def core_modules() -> list[Path]:
    """The course core: every module of the package outside ``research/``."""
    return sorted(p for p in PACKAGE.rglob("*.py") if RESEARCH not in p.parents)


def test_the_core_never_imports_research():
    """Issue #32: the package has two jobs -- the course core that notebooks 01-04 teach from, and the
    research machinery in ``research/`` -- and the dependency points one way: research uses the core.
    No core module imports ``bcdet_helpers.research``: not at module level, not inside a function, not
    as a string handed to ``importlib`` (:func:`imported_modules` sees all three)."""
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    found = [f"{p.relative_to(PACKAGE.parent)} -> {t}" for p in core_modules()
             for t in sorted(imported_modules(p, paths)) if (t + ".").startswith("bcdet_helpers.research.")]
    assert not found, f"core modules that import research (move the function to the core or the module to research): {found}"
    # the check sees an import inside a function: recorded reads the study's statistics lazily
    assert "bcdet_helpers.research.stats" in imported_modules(RESEARCH / "recorded.py", paths)
    assert PACKAGE / "model.py" in core_modules() and RESEARCH / "cli.py" not in core_modules()


def test_the_readme_names_the_core_size():
    """The README's package section says how big the course core is (modules, lines), so a student knows
    what there is to read; the numbers are computed here, so the sentence cannot go stale."""
    modules = core_modules()
    lines = sum(len(p.read_text().splitlines()) for p in modules)
    section = README.read_text().split("## Package layout", 1)[1].split("\n## ", 1)[0]
    size = f"{len(modules)} modules, {lines:,} lines"
    assert size in " ".join(section.split()), f"the README's package section should say the core is {size!r}"


def test_workers_are_started_in_one_place():
    """Issue #32: the study and the tuner start their worker processes through one helper,
    ``research/workers.py`` (spawned, threads shared out, ending with their parent); no other module
    builds a ``Pool`` or a ``Process`` of its own."""
    starters = {"Pool", "Process"}
    found = [f"{p.relative_to(PACKAGE.parent)}:{node.lineno}" for p in sorted(PACKAGE.rglob("*.py"))
             if p != RESEARCH / "workers.py"
             for node in ast.walk(ast.parse(p.read_text()))
             if isinstance(node, ast.Call) and (getattr(node.func, "attr", None) or getattr(node.func, "id", None)) in starters]
    assert not found, f"worker processes started outside research/workers.py: {found}"
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    for user in (RESEARCH / "tune.py", RESEARCH / "study" / "cv.py"):
        assert "bcdet_helpers.research.workers" in imported_modules(user, paths), user
