"""Every setting that shapes a run lives in the profile table (issue #18, item 4).

A number that shapes a run but lives outside ``profiles.py`` is invisible to ``RUN_FIELDS``: edit it
and a finished run is silently reused with the old value. Two guards:

* a static scan of ``bcdet_helpers/`` that fails, naming file and line, when a run-shaping setting
  gets a literal number outside ``profiles.py`` (a parameter default such as ``dropout=0.2``, a
  keyword such as ``batch_size=128``, a dict entry such as ``"degrees": 10.0``, ``nn.Dropout(0.2)``,
  a ``getattr(profile, "dropout", 0.2)`` fallback, a bootstrap count given as a literal);
* a change of an augmentation number in the profile makes ``runs._same_config`` report it, and
  reaches the batches training sees.
"""
from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bcdet_helpers import runs as runs_module
from bcdet_helpers.profiles import AUGMENT_FIELDS, DEFAULTS, RUN_FIELDS, get_profile

PACKAGE = Path(__file__).resolve().parents[1] / "bcdet_helpers"
# the parameter / keyword / key names that carry a run-shaping setting
SETTINGS = set(RUN_FIELDS) | set(DEFAULTS.augment_params)
BOOTSTRAP_NAMES = {"bootstrap", "n_boot"}
# (file, finding) -> why it is not a run-shaping constant. Keep this short; each entry says why.
ALLOWED = {
    ("bcdet_helpers/evaluate.py", "default batch_size=256"):
        "predict_proba's inference chunk: memory per step, not a training setting (eval mode, no batch statistics)",
    ("bcdet_helpers/exercises/ch03.py", "width=64"):
        "exercise 03.3's question as the notebook states it (conv3's shape at width 64); it shapes no run",
}


def _number(node) -> bool:
    """A literal number, a negated one, or a tuple of them (``(0.9, 1.1)``)."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        node = node.operand
    if isinstance(node, ast.Tuple):
        return bool(node.elts) and all(_number(e) for e in node.elts)
    return isinstance(node, ast.Constant) and type(node.value) in (int, float)


def run_shaping_literals(source: str) -> list[tuple[int, str]]:
    """``(line, finding)`` for every run-shaping setting given as a literal number in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            a = node.args
            positional = a.posonlyargs + a.args
            pairs = list(zip(positional[len(positional) - len(a.defaults):], a.defaults))
            pairs += [(arg, d) for arg, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None]
            found += [(node.lineno, f"default {arg.arg}={ast.unparse(d)}") for arg, d in pairs
                      if arg.arg in SETTINGS | BOOTSTRAP_NAMES and _number(d)]
        elif isinstance(node, ast.Call):
            func = ast.unparse(node.func)
            found += [(node.lineno, f"{kw.arg}={ast.unparse(kw.value)}") for kw in node.keywords
                      if kw.arg in SETTINGS | BOOTSTRAP_NAMES and _number(kw.value)]
            if func.split(".")[-1] == "Dropout" and node.args and _number(node.args[0]):
                found.append((node.lineno, ast.unparse(node)))
            if (func == "getattr" and len(node.args) == 3 and isinstance(node.args[1], ast.Constant)
                    and node.args[1].value in SETTINGS | BOOTSTRAP_NAMES and _number(node.args[2])):
                found.append((node.lineno, ast.unparse(node)))
            if func.split(".")[-1] == "bootstrap_ci" and len(node.args) >= 4 and _number(node.args[3]):
                found.append((node.lineno, ast.unparse(node)))
            if func.split(".")[-1] == "bootstrap_ci":
                found += [(node.lineno, ast.unparse(node)) for kw in node.keywords if kw.arg == "n" and _number(kw.value)]
        elif isinstance(node, ast.Dict):
            found += [(node.lineno, f"{k.value!r}: {ast.unparse(v)}") for k, v in zip(node.keys, node.values)
                      if isinstance(k, ast.Constant) and k.value in SETTINGS and _number(v)]
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None and _number(node.value):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found += [(node.lineno, f"{t.id} = {ast.unparse(node.value)}") for t in targets
                      if isinstance(t, ast.Name) and t.id.lower() in SETTINGS | BOOTSTRAP_NAMES]
    return found


def test_no_run_shaping_constant_outside_the_profile_table():
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "profiles.py":
            continue
        rel = path.relative_to(PACKAGE.parent).as_posix()
        problems += [f"{rel}:{line}: {what}" for line, what in run_shaping_literals(path.read_text())
                     if (rel, what) not in ALLOWED]
    assert not problems, (
        "run-shaping settings written as numbers outside bcdet_helpers/profiles.py (put them in Profile "
        "and RUN_FIELDS, and default to profiles.DEFAULTS.<field>):\n  " + "\n  ".join(problems))


@pytest.mark.parametrize("planted", [
    "def build(width, dropout=0.2): ...",
    "class M:\n    def __init__(self, width: int = 64): ...",
    "fit(model, data, phases, batch_size=128, seed=0)",
    "AUGMENT = {'hflip_p': 0.5, 'degrees': 10.0}",
    "head = nn.Dropout(0.2)",
    "p = getattr(profile, 'dropout', 0.2)",
    "ci = bootstrap_ci(y, p, accuracy, 2000)",
    "ci = ev.bootstrap_ci(y, p, n=1000)",
    "def evaluate(run, n_boot=2000): ...",
    "split = make_split(index, folds=5, val_fraction=0.15)",
    "def augment(x, scale=(0.9, 1.1)): ...",
])
def test_the_scan_catches_a_planted_constant(planted):
    assert run_shaping_literals(planted), f"the scan missed: {planted}"


@pytest.mark.parametrize("clean", [
    "def build(width, dropout=DEFAULTS.dropout): ...",
    "fit(model, data, phases, batch_size=prof.batch_size, seed=0)",
    "x = resize_image(m, image_size, 1)",
    "out = {'n_boot': 0, 'alpha': 0.05}",
])
def test_the_scan_leaves_settings_read_from_the_table_alone(clean):
    assert run_shaping_literals(clean) == []


# ------------------------------------------------------------------------------------------
def _config(profile) -> dict:
    return json.loads(json.dumps(runs_module._run_config(profile, "constant", [], 0, "grouped", 0)))


@pytest.mark.parametrize("field, value", [
    ("augment_hflip_p", 0.0), ("augment_degrees", 20.0), ("augment_translate", 0.0), ("augment_scale", (0.8, 1.2)),
    ("dropout", 0.5), ("augment", False),
])
def test_changing_an_augmentation_or_dropout_setting_invalidates_a_finished_run(field, value):
    """A finished run folder is reused only while _same_config finds no difference: a new
    augmentation number must show up there, or the old run would be silently reused."""
    before = _config(get_profile("smoke"))
    after = _config(get_profile("smoke", **{field: value}))
    assert runs_module._same_config(before, before) == []
    assert runs_module._same_config(before, after) == [f"profile.{field}"]


def test_every_augmentation_number_is_a_run_field():
    assert set(AUGMENT_FIELDS) <= set(RUN_FIELDS)
    assert {f"augment_{k}" for k in DEFAULTS.augment_params} == set(AUGMENT_FIELDS)
    assert {"dropout", "batch_size", "width", "image_size", "epochs", "augment"} <= set(RUN_FIELDS)


def test_a_run_recorded_before_the_augmentation_fields_still_matches_the_defaults():
    """config.json files written before the augment_* fields existed were trained with today's
    default numbers (they were hard-coded and never changed): they stay reusable -- and differ from
    a profile with other numbers."""
    old = _config(get_profile("smoke"))
    for f in AUGMENT_FIELDS:
        del old["profile"][f]
    assert runs_module._same_config(old, _config(get_profile("smoke"))) == []
    assert runs_module._same_config(old, _config(get_profile("smoke", augment_degrees=5.0))) == ["profile.augment_degrees"]


def test_the_augment_module_reads_the_table():
    from bcdet_helpers.data.augment import AUGMENT

    assert {k: v for k, v in AUGMENT.items() if k != "vflip_p"} == DEFAULTS.augment_params
    assert get_profile("smoke", augment=False).augmentation is None
    assert get_profile("smoke", augment_degrees=3.0).augmentation["degrees"] == 3.0


def test_the_profile_augmentation_reaches_the_training_batches():
    """Batches augments with the numbers it is given (a profile's ``augmentation``), not the defaults:
    a flip-only setting gives exactly the left-right mirror of every image."""
    from bcdet_helpers.batches import Batches
    from bcdet_helpers.data import SplitData
    from bcdet_helpers.data.preprocess import normalize

    n = 12
    images = torch.randint(0, 256, (n, 1, 8, 8), dtype=torch.uint8)
    split = np.array(["train"] * 8 + ["val"] * 4)
    data = SplitData(images=images, labels=torch.arange(n) % 3, files=[str(i) for i in range(n)], parts=split,
                     mean=0.4, std=0.2)
    flip_only = get_profile("smoke", augment_hflip_p=1.0, augment_degrees=0.0, augment_translate=0.0,
                            augment_scale=(1.0, 1.0)).augmentation
    b = Batches(data, batch_size=8, seed=0, device=torch.device("cpu"), augment=flip_only)
    x = images[:8]
    assert torch.allclose(b.prepare(x, augment=True), normalize(x, 0.4, 0.2).flip(-1), atol=1e-5)
    default = Batches(data, batch_size=8, seed=0, device=torch.device("cpu"), augment=True)
    assert not torch.allclose(default.prepare(x, augment=True), normalize(x, 0.4, 0.2).flip(-1), atol=1e-3)


def test_train_run_hands_the_profile_augmentation_to_fit(tmp_path, monkeypatch):
    import bcdet_helpers.data as bdata
    from bcdet_helpers import train
    from test_train import SIZE, WIDTH, fake_data

    class Stop(Exception):
        pass

    seen = {}

    def fake_fit(*a, **kw):
        seen.update(kw)
        raise Stop

    monkeypatch.setenv("BCDET_RUNS", str(tmp_path / "runs"))
    monkeypatch.setattr(bdata, "load_split_data", lambda *a, **k: fake_data(), raising=False)
    monkeypatch.setattr(train, "fit", fake_fit)
    prof = get_profile("smoke", image_size=SIZE, width=WIDTH, augment_degrees=4.0)
    with pytest.raises(Stop):
        runs_module.train_run(prof, "constant", device="cpu", progress=False)
    assert seen["augment"] == prof.augment_params and seen["augment"]["degrees"] == 4.0


def test_the_bootstrap_count_comes_from_the_profile():
    from bcdet_helpers.uncertainty import bootstrap_count

    assert bootstrap_count("smoke") == get_profile("smoke").bootstrap
    assert bootstrap_count("paper") == get_profile("paper").bootstrap
    assert bootstrap_count(None) == bootstrap_count("not-a-profile") == DEFAULTS.bootstrap


NEW_IN_32 = {"duplicate_threshold": 0.5, "resize": "nearest", "zero_head": False}  # a value other than today's


def test_the_threshold_resize_and_head_are_run_fields_older_runs_predate():
    """The near-duplicate threshold, the cache's resize filter and the zero head were constants outside
    the table until issue #32: a config.json without them reads as today's values (so recorded runs stay
    reusable), and a profile with another value is another run."""
    from bcdet_helpers.profiles import RUN_FIELDS_BEFORE

    assert set(NEW_IN_32) <= set(RUN_FIELDS)
    assert {f: RUN_FIELDS_BEFORE[f] for f in NEW_IN_32} == {f: getattr(DEFAULTS, f) for f in NEW_IN_32} \
        == {"duplicate_threshold": 0.70, "resize": "bicubic", "zero_head": True}
    old = _config(get_profile("smoke"))
    for f in NEW_IN_32:
        del old["profile"][f]
    assert runs_module._same_config(old, _config(get_profile("smoke"))) == []
    for f, value in NEW_IN_32.items():
        assert runs_module._same_config(old, _config(get_profile("smoke", **{f: value}))) == [f"profile.{f}"]
