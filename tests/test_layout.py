"""The shape of the package (issue #18): no import cycle, one BUSI record, one preprocessing step,
every command handler beside the CLI, and the old import paths still working."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import numpy as np
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bcdet_helpers"


# ------------------------------------------------------------------------------- import cycles
def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports, at module level *or inside a function* (a lazy
    import is still a dependency; the index <-> duplicates cycle of issue #18 was one). Importing
    ``a.b.c`` also runs ``a.b``'s ``__init__``, so that is an edge too. ``importlib`` calls in a
    module's ``__getattr__`` -- the aliases that keep an old name importable -- are not imports."""
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                for alias in node.names:
                    targets.add(f"{mod}.{alias.name}" if f"{mod}.{alias.name}" in paths else mod)
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
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
    from bcdet_helpers.callbacks import Batches
    from bcdet_helpers.data import SplitData
    from bcdet_helpers.data.preprocess import normalize
    from bcdet_helpers.evaluate import predict_proba
    from bcdet_helpers.model import ResNet9

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (10, 1, 16, 16), dtype=torch.uint8, generator=g)
    split = np.array(["train"] * 6 + ["val"] * 4)
    mean, std = SplitData.train_stats(images, split)
    data = SplitData(images=images, labels=torch.arange(10) % 3, files=[str(i) for i in range(10)],
                     split=split, mean=mean, std=std)
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


# ------------------------------------------------------------------------ commands and old names
def test_every_command_handler_lives_beside_the_cli():
    from bcdet_helpers import cli, commands

    for key, (module, func) in cli.HANDLERS.items():
        assert module == "bcdet_helpers.commands", key
        assert callable(getattr(commands, func)), key
    domain = [p for p in PACKAGE.rglob("*.py") if p.name not in ("cli.py", "commands.py")]
    defined = [f"{p.relative_to(PACKAGE)}: {n.name}" for p in domain for n in ast.parse(p.read_text()).body
               if isinstance(n, ast.FunctionDef) and n.name.startswith("cli_")]
    assert not defined, f"command handlers outside commands.py: {defined}"


OLD_EVALUATE_NAMES = [
    "BcdetError", "CLASSES", "Evaluation", "IMAGE_SUFFIXES", "PUBLISHED", "TEACHING_REMINDER", "accuracy",
    "bootstrap_ci", "cam_mass_in_mask", "cli_evaluate", "cli_predict", "evaluate_run", "expected_calibration_error",
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
    ("bcdet_helpers.train", "cli_train"), ("bcdet_helpers.train", "load_checkpoint"),
    ("bcdet_helpers.train", "choose_device"), ("bcdet_helpers.reproduce", "cli_reproduce"),
    ("bcdet_helpers.data.duplicates", "cli_duplicates"), ("bcdet_helpers.data.duplicates", "thumbnail"),
    ("bcdet_helpers.data.duplicates", "THRESHOLD"), ("bcdet_helpers.paths", "CLASSES"),
    ("bcdet_helpers.profiles", "SPLITS"), ("bcdet_helpers.data.augment", "AUGMENT"),
])
def test_old_import_paths_keep_working(module, name):
    assert getattr(importlib.import_module(module), name) is not None


def test_parts_and_kinds_have_one_name_each():
    """``kind`` = grouped / random (how folds are drawn); ``parts`` = train / val / test."""
    torch = pytest.importorskip("torch")
    from bcdet_helpers.data import SplitData
    from bcdet_helpers.data.splitdata import PARTS
    from bcdet_helpers.profiles import KINDS, SPLITS

    assert KINDS == ("grouped", "random") and SPLITS is KINDS and PARTS == ("train", "val", "test")
    data = SplitData(images=torch.zeros(3, 1, 4, 4, dtype=torch.uint8), labels=torch.zeros(3, dtype=torch.long),
                     files=["a", "b", "c"], split=np.array(["train", "val", "test"]))
    assert data.parts is data.split


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
