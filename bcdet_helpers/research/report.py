"""``report.md``: the one page a reviewer reads without Jupyter.

Written at the end of ``bcdet reproduce`` (:mod:`.reproduce`) and again by ``bcdet publish``
(:mod:`.publish`, into ``results/``): ours beside the paper, the cross-validated verdict read from
``study.json`` (:func:`bcdet_helpers.research.study.load_study` -- one schema, nothing guessed), the leakage
gap, device, wall time, links to the key figures. Every number in it comes from the metrics and the
study it is given; a missing one prints as "–".

Over 350 lines on purpose: ``report.md`` is one page, written top to bottom by :func:`write_report`,
and its sections share the small formatters above them; split, sections and formatters would import each other.
"""
from __future__ import annotations

import math
from pathlib import Path

REPORT_FIGURES = (  # (file stem under figures/, caption) -- the ones report.md links, if present
    ("05_forest", "The verdict: paired differences with clustered 95% CIs (cross-validated study)"),
    ("05_confusion_matrices", "Confusion matrices (chapter 04's runs on their test fold, final weights)"),
    ("05_roc_curves", "ROC curves (one-vs-rest)"),
    ("05_reliability", "Reliability diagram"),
    ("05_gradcam", "Grad-CAM with the lesion mask outlined"),
    ("05_misclassified", "Misclassified test images"),
    ("04_histories", "Training curves (chapter 04)"),
    ("06_internal_vs_external", "Another hospital: BUSI test fold vs BUS-BRA, lesion AUC (chapter 06)"),
    ("06_stress_curves", "Acquisition-shift stress curves on BUSI test images (chapter 06)"),
)


def fmt_duration(seconds: float) -> str:
    """``42 s``, ``17 min``, ``2.5 h``: a duration as a person reads it (report and estimate)."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _pct(v) -> str:
    return "–" if _missing(v) else f"{100 * v:.1f}%"


def _num(v, digits: int = 3) -> str:
    return "–" if _missing(v) else f"{v:.{digits}f}"


def _ci(ci: dict | None) -> str:
    if not ci or _missing(ci.get("low")) or _missing(ci.get("high")):
        return "–"
    return f"{100 * ci['low']:.1f}–{100 * ci['high']:.1f}%"


def _mean_std(d: dict | None) -> str:
    if not d or d.get("mean") is None:
        return "–"
    std = d.get("std")
    sd = "" if _missing(std) else f" ± {100 * std:.1f}"
    return f"{100 * d['mean']:.1f}{sd}% (n={d.get('n', len(d.get('values', [])))})"


def smoke_warning(profile: str) -> str | None:
    """For the ``smoke`` profile, why its numbers mean nothing (a report without it reads "ours
    30 % vs the paper 90 %" as a finding); ``None`` for the other profiles."""
    if profile != "smoke":
        return None
    from ..profiles import get_profile

    p = get_profile("smoke")
    return (f"Smoke profile: these numbers mean nothing. It trains a {p.width}-channel ResNet9 for "
            f"{p.epochs} epochs on at most {p.max_per_class} images per class at {p.image_size} x "
            f"{p.image_size} px, only to check that every code path runs (make test). Do not compare "
            "them with the paper; the laptop or paper profile gives numbers worth reading.")


def _pts(v) -> str:
    return "–" if _missing(v) else f"{100 * v:+.1f}"


def _paper_rows(add, cells) -> None:
    """The paper's two numbers as table rows: its source, then ``cells(reference)``."""
    from ..published import PUBLISHED

    for key in ("paper_switching", "paper_constant"):
        ref = PUBLISHED[key]
        add("| " + " | ".join([ref["source"], *cells(ref)]) + " |")


def _iv(iv, signed: bool = False) -> str:
    """An :class:`~bcdet_helpers.research.stats.Interval` as ``77.7% [70.0, 84.0]`` (or points, ``signed``)."""
    if iv is None or _missing(iv.value):
        return "–"
    if signed:
        return f"{_pts(iv.value)} [{_pts(iv.low)}, {_pts(iv.high)}]"
    return f"{_pct(iv.value)} [{_num(100 * iv.low, 1)}, {_num(100 * iv.high, 1)}]"


def verdict(d, claim: float) -> str:
    """What the difference ``d`` (a :class:`~bcdet_helpers.research.study.Difference`) and the verdict's interval
    show, in plain words, against a difference the size of the paper's ``claim``: the interval with training
    variance (``d.verdict_interval``), so "rules out +9" is said only where the trained models' variance
    is in it (issue #28)."""
    iv = d.verdict_interval
    detectable = d.resolution(claim)[0]
    if _missing(iv.low) or _missing(iv.high):
        return "no interval (too few groups or runs)"
    size = f"the paper's {_pts(claim)} points" if (d.a, d.b) == ("switching", "constant") else \
        f"a difference the size of the paper's claim ({_pts(claim)} points)"
    if iv.low > 0 or iv.high < 0:
        text = f"the CI excludes 0: {d.a} is {'better' if iv.low > 0 else 'worse'} than {d.b}"
        if iv.low > claim:
            text += f", by more than {size}"
        elif iv.high < claim and iv.low > 0:
            text += f", but by less than {size} (the CI excludes it)"
        elif iv.low > 0:
            text += f"; the CI includes {size}"
        return text
    text = f"the CI includes 0: the data cannot tell {d.a} from {d.b}"
    text += f", and it excludes {size}" if iv.high < claim else f", nor rule out {size}"
    if not _missing(detectable):
        text += (f"; this design detects a true difference of {100 * detectable:.1f} points or more with 80% "
                 "power, so a smaller one may exist unseen")
    return text


def _verdict_section(study, kind: str, add) -> None:
    """The paired differences, read from the analysis ``study.json`` names as the verdict's
    (``study.verdict_analysis``), the sensitivity checks beside it."""
    from ..published import PUBLISHED

    add(f"## The verdict: paired differences ({kind} split)\n")
    named = (f"**The verdict's analysis**, named in `study.json` before the second fold partition was scored: "
             f"{study.verdict_analysis}." if study.verdict_analysis else
             "This older study names no verdict analysis: its interval is the fixed-model group bootstrap.")
    add(f"Pooled out-of-fold difference in accuracy (percentage points). {named} "
        "What the design can detect (80 % power) and its power against the paper's "
        f"{_pts(study.claim)} points are the less optimistic of that interval's and the corrected test's. "
        "The corrected test "
        "(seeds averaged within a fold, the unit it was derived for) and the fixed-model interval (the same trained "
        "models, groups resampled) are the sensitivity checks beside it.\n")
    add("| comparison | question | ours, points [95% CI with training variance] | corrected t-test, partitions × folds "
        "| fixed-model CI | detectable | power at the claim |")
    add("| --- | --- | --- | --- | --- | --- | --- |")
    rows = [d for d in study.differences if d.kind == kind and d.metric == "accuracy" and d.weights == study.weights]
    for d in rows:
        detectable, power = d.resolution(study.claim, study.alpha)
        test = (f"{d.fold_test.n} differences, p = {_num(d.fold_test.p)}, [{_pts(d.fold_test.low)}, "
                f"{_pts(d.fold_test.high)}]" if d.fold_test is not None and d.fold_test.n > 1 else "–")
        sees = "–" if _missing(detectable) else _num(100 * detectable, 1)
        add(f"| {d.a} − {d.b} | {d.question} | {_iv(d.verdict_interval, signed=True)} | {test} | "
            f"{_iv(d.pooled, signed=True) if d.training is not None else '–'} | {sees} | {_pct(power)} |")
    add("")
    for d in rows:
        paper = (f" The paper reports {_pts(study.claim)} points ({_pct(PUBLISHED['paper_switching']['accuracy'])} vs "
                 f"{_pct(PUBLISHED['paper_constant']['accuracy'])}, one run each)."
                 if (d.a, d.b) == ("switching", "constant") else "")
        add(f"- **{d.a} − {d.b}** ({d.question}): {_pts(d.pooled.value)} points — {verdict(d, study.claim)}.{paper}")
    add("")


def _study_sections(study, add, profile_folder: str) -> None:
    """The cross-validated study's part of the report, from the :class:`~bcdet_helpers.research.study.Study`."""
    kind = "grouped" if "grouped" in study.kinds else study.kinds[0]
    parts = study.partitions(kind)
    add("## Headline: pooled out-of-fold accuracy, ours vs the paper\n")
    add(f"Study `{profile_folder}`: {len(study.arms)} arms x {len(parts)} fold partition(s) x "
        f"{study.folds.get(kind)} folds x seeds "
        + ", ".join(f"{k}: {', '.join(map(str, v))}" for k, v in study.seeds.items())
        + f"; every image is a test image once per seed and partition. {study.n_scored} of {study.n_images} images "
        f"scored ({len(study.conflicts)} label-conflict images {'included' if study.include_conflicts else 'left out'}); "
        f"weights: `{study.weights}.pt` (final). {study.n_boot} bootstrap resamples.\n")
    add("Accuracy, balanced accuracy and the malignant operating point carry training variance: each resample "
        "draws the trained models (seeds x fold partitions) and the near-duplicate groups, so the interval "
        "answers \"other models trained the same way, other patients\"; the fixed-model interval beside "
        "accuracy resamples the groups only (the same models, another test set) and is narrower. Macro-F1 and "
        "recall hold the models fixed. The operating point is each run's threshold for 90 % malignant "
        "sensitivity, chosen on its validation images and carried over to its test fold.\n")
    add("| | split | accuracy [95% CI with training variance] | fixed-model CI | macro-F1 [95% CI] | malignant "
        "recall [95% CI] | balanced accuracy [95% CI] | malignant sensitivity / specificity at the "
        "validation-chosen threshold | seeds |")
    add("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for k in study.kinds:
        for arm in study.arms:
            try:
                s = study.score(arm, k)
            except KeyError:
                continue
            label = "leak-free grouped folds" if k == "grouped" else "random folds (paper-like, leak near-duplicates)"
            point = (f"{_iv(s.malignant_sensitivity)} / {_iv(s.malignant_specificity)}"
                     if s.malignant_sensitivity is not None else "–")
            add(f"| ours, {arm} | {label} | {_iv(s.accuracy_training or s.accuracy)} | "
                f"{_iv(s.accuracy) if s.accuracy_training else '–'} | {_iv(s.macro_f1)} | "
                f"{_iv(s.recall.get('malignant'))} | {_iv(s.balanced_accuracy)} | {point} | {s.n_seeds} |")
    _paper_rows(add, lambda ref: ["not stated", f"{_pct(ref['accuracy'])} (no CI)", "–", "–", "–", "–", "–", "–"])
    add("")
    _verdict_section(study, kind, add)
    leak = [g for g in study.leakage if g.metric == "accuracy" and g.weights == study.weights]
    if leak:
        add("## Leakage gap (random folds minus grouped folds, pooled accuracy)\n")
        for g in leak:
            add(f"- {g.arm}: {_pct(g.random)} vs {_pct(g.grouped)} → {_iv(g.gap, signed=True)} points "
                f"(seeds {', '.join(map(str, g.seeds))}; paired bootstrap over near-duplicate groups)")
        add("")
    ens = [(study.score(a, kind), study.score(a, kind, "ensemble_tta")) for a in study.arms
           if any(s.arm == a and s.kind == kind and s.rows == "ensemble_tta" and s.weights == study.weights
                  for s in study.scores)]
    if ens:
        add("## Seed ensemble + flip TTA\n")
        for pooled, e in ens:
            add(f"- {pooled.arm}: pooled {_pct(pooled.accuracy.value)} → ensemble of {e.n_seeds} seed(s) with "
                f"left-right flip {_iv(e.accuracy)}")
        add("")
    if study.weights_checks:
        add("## The weights rule (final vs best-by-validation, on validation images)\n")
        for w in study.weights_checks:
            add(f"- {w.arm} ({w.kind}, {w.n_runs} runs): last {_pct(w.last_val_accuracy)}, best "
                f"{_pct(w.best_val_accuracy)} (best − last {_pts(w.mean_difference)} points; best higher in "
                f"{w.best_better}, last in {w.last_better}; best epoch {w.mean_best_epoch:.0f} of {w.epochs} on average)")
        add("\n`best` was chosen on these very images, so its side is optimistic.\n")
    add(f"## Label conflicts\n\n{len(study.conflicts)} image(s) whose near-duplicates carry another label"
        + (": " + ", ".join(f"`{c.file}` ({'/'.join(c.other_labels)})" for c in study.conflicts) if study.conflicts else "")
        + ".\n")


def _external_section(path: Path, add) -> None:
    """"Another hospital": chapter 06's ``external.json`` (beside the report) as a table a clinic reads --
    lesion AUC, sensitivity and specificity at the threshold chosen on BUSI validation images and carried
    over, the share called "normal", calibration -- each with its patient-clustered 95% interval, then per
    device. Nothing when the chapter did not run or found no BUS-BRA."""
    import json

    if not path.exists():
        return
    ext = json.loads(path.read_text())
    scores = ext.get("scores") or {}
    if not ext.get("busbra") or not scores:
        return
    first = next(iter(scores.values()))
    bra = first.get("BUS-BRA", {})
    add(f"## Another hospital: BUS-BRA (chapter 06; {ext.get('split')} split, fold {ext.get('fold')}, "
        f"seed {ext.get('seed')})\n")
    add("A 3-class BUSI model asked the lesion question on 2-class BUS-BRA (Brazil, four scanners): AUC of "
        "p(malignant) among benign + malignant images; sensitivity and specificity at the threshold chosen on "
        f"BUSI validation images for {_pct(ext.get('target_sensitivity'))} sensitivity and carried over, never "
        f"re-chosen on BUS-BRA. 95% intervals resample {bra.get('resampled', 'patients')}, not images. One fold "
        "and one seed: the study's `results/<profile>-external/` carries the spread over folds and seeds.\n")
    add("| arm | set | images (patients) | lesion AUC | sensitivity | specificity | called normal | ECE |")
    add("| --- | --- | --- | --- | --- | --- | --- | --- |")
    def cell(d, key):  # "0.87 [0.80, 0.93]"; "–" where the set cannot support the number
        e = d.get(key) or {}
        if _missing(e.get("value")):
            return "–"
        iv = "" if _missing(e.get("low")) or _missing(e.get("high")) else f" [{e['low']:.2f}, {e['high']:.2f}]"
        return f"{e['value']:.2f}{iv}"

    for arm, by_set in scores.items():
        for name, sc in by_set.items():
            o = sc.get("overall", {})
            add(f"| {arm} | {name} | {o.get('n_images')} ({o.get('n_patients')}) | {cell(o, 'auc')} | "
                f"{cell(o, 'sensitivity')} | {cell(o, 'specificity')} | {cell(o, 'predicted_normal')} | {cell(o, 'ece')} |")
    add("")
    devices = [(arm, d) for arm, by_set in scores.items() for d in (by_set.get("BUS-BRA", {}).get("per_device") or [])]
    if devices:
        add(f"Per BUS-BRA device (devices with at least {bra.get('min_device_images')} images; fewer: "
            + (", ".join(f"{k} {v}" for k, v in (bra.get("devices_too_small") or {}).items()) or "none") + "):\n")
        add("| arm | device | images (patients) | lesion AUC | sensitivity | specificity |")
        add("| --- | --- | --- | --- | --- | --- |")
        for arm, d in devices:
            add(f"| {arm} | {d.get('name')} | {d.get('n_images')} ({d.get('n_patients')}) | {cell(d, 'auc')} | "
                f"{cell(d, 'sensitivity')} | {cell(d, 'specificity')} |")
        add("")


def write_report(metrics: dict, folder: str | Path, executed_notebooks: str | None = None, study=None,
                 study_folder: str | None = None) -> Path:
    """``report.md``: one page a reviewer reads without Jupyter, built from ``metrics`` and ``study``.

    ``study``: the cross-validated :class:`~bcdet_helpers.research.study.Study` (read with
    :func:`study.load_study` by the caller), or None when the reproduction did not run it -- the report
    then says so and shows chapter 04's one-fold runs only. ``study_folder``: where the study's files
    are, for the text (default ``cv/``). ``executed_notebooks``: where the executed notebooks are when
    they are not beside the report (``bcdet publish`` writes the report into ``results/``, without
    them); default: linked from ``notebooks/`` next to it."""
    from ..published import PUBLISHED

    folder = Path(folder)
    lines = []
    add = lines.append
    rep = metrics.get("reproduce", {})
    profile = metrics.get("profile", rep.get("profile", "?"))
    dev = rep.get("device", {}) or {}
    dev_text = dev.get("gpu") or f"{dev.get('device', '?')} ({dev.get('cpu', '')}, {dev.get('torch_threads', '?')} threads)"
    add(f"# bcdet reproduction — profile `{profile}`\n")
    add("ResNet9 on BUSI (benign / malignant / normal), reproducing Achyuthanwesh et al. "
        f"Every number below was computed by the executed notebooks in `{executed_notebooks or 'notebooks/'}`"
        + (f" and the study in `{study_folder or 'cv/'}`" if study is not None else "")
        + "; this is a teaching model, not a medical device.\n")
    smoke = smoke_warning(profile)
    if smoke:
        add(f"> **{smoke}**\n")
    add(f"- device: {dev_text}")
    if rep.get("total_wall_time_s") is not None:
        add(f"- wall time: {fmt_duration(rep['total_wall_time_s'])} in total for this command "
            "(finished training runs are reused, not retrained)")
    trained = [r["train_seconds"] for r in metrics.get("runs", []) if not _missing(r.get("train_seconds"))]
    if trained:
        add(f"- training: {fmt_duration(sum(trained))} over {len(trained)} runs, when they were trained "
            "(each run's `result.json` has its device, versions and wall time)")
    env = rep.get("environment") or metrics.get("environment") or {}
    if env:
        v = env.get("versions", {})
        add(f"- torch {v.get('torch')}, python {v.get('python')}, commit {env.get('git_commit')}, "
            f"recorded {env.get('recorded_at')}")
    scope = rep.get("study")
    if scope:
        # "splits" and "schedules": the record's keys (reproduce.py) for the kinds and the arms
        by_kind = scope.get("seeds_by_kind") or {k: scope["seeds"] for k in scope["splits"]}
        arms, folds, parts = scope.get("arms") or scope["schedules"], scope.get("folds", 5), scope.get("partitions", 1)
        # the grouped split on every fold partition, the random split (the leakage gap) on the first
        base = len(arms) * folds * sum(len(v) * (parts if k == "grouped" else 1) for k, v in by_kind.items())
        n = scope.get("runs") or base
        design = (f"{n} training runs = arms {', '.join(arms)} x {folds} folds x seeds "
                  + "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in by_kind.items())
                  + (f"; the grouped split on {parts} fold partitions" if parts > 1 else "")
                  + (f"; {n - base} more for the leakage ladder" if n > base else "")
                  + (" (smaller than the profile's own study, to fit the time at hand)"
                     if scope.get("smaller_than_profile") else ""))
        if scope.get("run", True):
            add(f"- cross-validated study: {design}")
        else:
            add(f"- cross-validated study: not run (opt-in for profile `{profile}`: `--study`); it would be {design}")
    add(f"- command: `{rep.get('command', f'bcdet reproduce --profile {profile}')}`\n")

    if study is not None:
        if smoke:
            add("*Smoke profile: the study below checks that the code runs, nothing else.*\n")
        _study_sections(study, add, study_folder or "cv/")
    else:
        add("## Headline: chapter 04's runs, one fold, one seed\n")
        if smoke:
            add("*Smoke profile: the comparison below checks that the code runs, nothing else.*\n")
        add("The cross-validated study did not run in this reproduction, so there is no verdict here: one "
            "fold and one seed per arm cannot carry a difference of a few points. `bcdet reproduce --profile "
            "laptop` runs the study (notebook 05, `study=True`).\n")
        add("| | accuracy [95% CI, clustered] | macro-F1 | note |")
        add("| --- | --- | --- | --- |")
        for r in metrics.get("runs", []):
            ci = (f" [{_num(100 * r['acc_low'], 1)}, {_num(100 * r['acc_high'], 1)}]"
                  if not _missing(r.get("acc_low")) and not _missing(r.get("acc_high")) else "")
            add(f"| ours, {r['schedule']} | {_pct(r.get('accuracy'))}{ci} | {_pct(r.get('macro_f1'))} | "
                f"{r['split']} split, fold {r.get('fold', 0)}, seed {r['seed']}, {r.get('n_test', '?')} test images |")
        _paper_rows(add, lambda ref: [_pct(ref["accuracy"]), "–", ref["note"]])
        add("")
    models = metrics.get("evaluation", {}).get("models", {})
    if models:
        e = metrics["evaluation"]
        add(f"## Chapter 04's models on their test fold ({e.get('split')} split, fold {e.get('fold')}, seed "
            f"{e.get('seed')}, {e.get('weights')} weights)\n")
        add("| arm | accuracy | macro-F1 | weighted-F1 | macro AUC | ECE | n test |")
        add("| --- | --- | --- | --- | --- | --- | --- |")
        for arm, m in models.items():
            add(f"| {arm} | {_pct(m.get('accuracy'))} | {_pct(m.get('macro_f1'))} | {_pct(m.get('weighted_f1'))} | "
                f"{_num(m.get('macro_auc'))} | {_num(m.get('ece'))} | {m.get('n')} |")
        add("")
    cam = metrics.get("gradcam", {})
    if cam.get("mass_in_mask"):
        add("## Where the model looks (Grad-CAM mass inside the lesion mask)\n")
        for cls, v in cam["mass_in_mask"].items():
            area = cam.get("mask_area", {}).get(cls)
            if _missing(v):
                add(f"- {cls}: no lesion mask (normal tissue) — undefined")
            else:
                add(f"- {cls}: {_pct(v)} of the map inside the lesion (the lesion covers {_pct(area)} of the image; "
                    "a map spread evenly would score exactly that)")
        add("")
    _external_section(folder / "external.json", add)
    nbs = metrics.get("notebooks", {})
    if nbs:
        add("## Notebooks (executed copies)\n")
        if executed_notebooks:
            add(f"The command above leaves the executed notebooks in `{executed_notebooks}`; they are not "
                "committed, as they embed the dataset's images.\n")
        add("| notebook | wall time |")
        add("| --- | --- |")
        for name, info in nbs.items():
            link = name if executed_notebooks else f"[{name}]({info.get('executed', 'notebooks/' + name)})"
            add(f"| {link} | {fmt_duration(info['wall_time_s'])} |")
        add("")
    figs = [(stem, cap) for stem, cap in REPORT_FIGURES if (folder / "figures" / f"{stem}.png").exists()]
    if study is None:
        figs = [(stem, cap) for stem, cap in figs if stem != "05_forest"]  # a forest plot of another study
    if figs:
        add("## Key figures\n")
        for stem, cap in figs:
            add(f"### {cap}\n\n![{cap}](figures/{stem}.png)\n")
    shown = {stem for stem, _ in figs}
    others = sorted(p.name for p in (folder / "figures").glob("*.png") if p.stem not in shown)
    if others:
        add("Other figures: " + ", ".join(f"[{name}](figures/{name})" for name in others) + "\n")
    path = folder / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


