"""``report.md``: the one page a reviewer reads without Jupyter, built only from ``metrics.json``.

Written at the end of ``bcdet reproduce`` (:mod:`.reproduce`) and again by ``bcdet publish``
(:mod:`.publish`, into ``results/``): ours vs the paper, the switching-vs-constant verdict, the
leakage gap, device, wall time, links to the key figures. Every number in it comes from the
metrics it is given; a missing one prints as "–".
"""
from __future__ import annotations

import math
from pathlib import Path

REPORT_FIGURES = (  # (file stem under figures/, caption) -- the ones report.md links, if present
    ("05_confusion_matrices", "Confusion matrices (test split, best-by-validation)"),
    ("05_schedule_comparison", "Switching vs constant, per seed and split"),
    ("05_roc_curves", "ROC curves (one-vs-rest)"),
    ("05_reliability", "Reliability diagram"),
    ("05_gradcam", "Grad-CAM with the lesion mask outlined"),
    ("05_misclassified", "Misclassified test images"),
    ("04_histories", "Training curves (chapter 04)"),
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
    from .profiles import get_profile

    p = get_profile("smoke")
    return (f"Smoke profile: these numbers mean nothing. It trains a {p.width}-channel ResNet9 for "
            f"{p.epochs} epochs on at most {p.max_per_class} images per class at {p.image_size} x "
            f"{p.image_size} px, only to check that every code path runs (make test). Do not compare "
            "them with the paper; the laptop or paper profile gives numbers worth reading.")


def write_report(metrics: dict, folder: str | Path, executed_notebooks: str | None = None) -> Path:
    """``report.md``: one page a reviewer reads without Jupyter, built only from ``metrics``.

    ``executed_notebooks``: where the executed notebooks are when they are not beside the report
    (``bcdet publish`` writes the report into ``results/``, without them); default: linked from
    ``notebooks/`` next to it."""
    folder = Path(folder)
    lines = []
    add = lines.append
    rep = metrics.get("reproduce", {})
    profile = metrics.get("profile", rep.get("profile", "?"))
    dev = rep.get("device", {}) or {}
    dev_text = dev.get("gpu") or f"{dev.get('device', '?')} ({dev.get('cpu', '')}, {dev.get('torch_threads', '?')} threads)"
    add(f"# bcdet reproduction — profile `{profile}`\n")
    add("ResNet9 on BUSI (benign / malignant / normal), reproducing Achyuthanwesh et al. "
        f"Every number below was computed by the executed notebooks in `{executed_notebooks or 'notebooks/'}`; "
        "this is a teaching model, not a medical device.\n")
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
        n = len(scope["schedules"]) * len(scope["seeds"]) * len(scope["splits"])
        add(f"- study: {n} training runs = schedules {', '.join(scope['schedules'])} x seeds "
            f"{', '.join(map(str, scope['seeds']))} x splits {', '.join(scope['splits'])}"
            + (" (smaller than the profile's own study, to fit the time at hand)" if scope.get("smaller_than_profile") else ""))
    add(f"- command: `{rep.get('command', f'bcdet reproduce --profile {profile}')}`\n")

    ev = metrics.get("evaluation", {})
    study = metrics.get("study", {})
    add("## Headline: test accuracy, ours vs the paper\n")
    if smoke:
        add("*Smoke profile: the comparison below checks that the code runs, nothing else.*\n")
    add("| | accuracy | macro-F1 | 95% CI (accuracy, one model) | note |")
    add("| --- | --- | --- | --- | --- |")
    models = ev.get("models", {})
    runs = metrics.get("runs", [])
    for split in ("grouped", "random"):
        for sched in ("switching", "constant"):
            s = study.get(split, {}).get(sched)
            if not s:
                continue
            first = next((r for r in runs if r.get("split") == split and r.get("schedule") == sched), {})
            ci = {"low": first.get("acc_low"), "high": first.get("acc_high")}
            label = "leak-free grouped split" if split == "grouped" else "random split (paper-like, leaks near-duplicates)"
            add(f"| ours, {sched} | {_mean_std(s.get('accuracy'))} | {_mean_std(s.get('macro_f1'))} | "
                f"{_ci(ci)} | {label} |")
    for row in metrics.get("comparison_table", []):
        if row.get("source", "").startswith("ours"):
            continue
        add(f"| {row.get('source')} | {_pct(row.get('accuracy'))} | {_pct(row.get('macro_f1'))} | – | "
            f"{row.get('note', '')} |")
    add("")
    add("Mean ± std over seeds; n = number of seeds. The CI is a 95% percentile bootstrap over the test "
        "images of the first seed's best-by-validation model.\n")

    add("## Does switching beat constant?\n")
    for split in ("grouped", "random"):
        paired = study.get(split, {}).get("paired_accuracy")
        if paired:
            add(f"- **{split} split**: {paired.get('verdict')}")
    add("")
    gap = metrics.get("leakage_gap", {})
    if gap:
        add("## Leakage gap (random split minus grouped split, mean test accuracy)\n")
        for sched, g in gap.items():
            add(f"- {sched}: {_pct(g.get('random'))} vs {_pct(g.get('grouped'))} → gap "
                f"{100 * g['gap']:+.1f} points" if g.get("gap") is not None else f"- {sched}: –")
        n_seeds = min((d.get("accuracy", {}).get("n", 0) for sp in study.values() for k, d in sp.items()
                       if isinstance(d, dict) and "accuracy" in d), default=0)
        add(f"\nThe two splits have different test sets; with {n_seeds} seed(s) per split, read the gap "
            "against the seed-to-seed spread in the headline table"
            + (" -- with a single seed it is not a measurement of leakage yet." if n_seeds < 2 else "."))
        add("")
    if models:
        add("## Best-by-validation models on the test split (first seed, grouped split)\n")
        add("| schedule | accuracy | macro-F1 | weighted-F1 | macro AUC | ECE | n test |")
        add("| --- | --- | --- | --- | --- | --- | --- |")
        for sched, m in models.items():
            add(f"| {sched} | {_pct(m.get('accuracy'))} ({_ci(m.get('ci', {}).get('accuracy'))}) | "
                f"{_pct(m.get('macro_f1'))} ({_ci(m.get('ci', {}).get('macro_f1'))}) | {_pct(m.get('weighted_f1'))} | "
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
