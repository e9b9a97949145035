"""The ``bcdet external`` record of a study on BUS-BRA: :func:`write_external` writes
:func:`~bcdet_helpers.research.study.external_eval.evaluate_external`'s result as ``external.json``, ``table.csv``,
two figures and a ``README.md`` written from it (never by hand)."""
from __future__ import annotations

import math
from pathlib import Path

from ...errors import BcdetError
from ..stats import Interval
from .external_eval import evaluate_external
from .external_result import ExternalStudy

__all__ = ["EXTERNAL_FILES", "write_external", "reliability_figure", "devices_figure", "external_readme"]

EXTERNAL_FILES = ("external.json", "table.csv", "reliability.png", "devices.png", "README.md")  # what write_external writes


def write_external(folder: str | Path, out: str | Path, *, command: str = "", profile: str | None = None,
                   force: bool = False, busbra=None, **kw) -> ExternalStudy:
    """:func:`evaluate_external` of ``folder`` written to ``out``: ``external.json``, ``table.csv``,
    ``reliability.png``, ``devices.png`` and a ``README.md`` written from them.

    Refused, before any work, when ``profile`` is given and the study ran under another one, and when
    ``out`` is a folder this did not write or holds committed records, unless ``force``
    (:func:`~bcdet_helpers.research.outputs.claim`), as :func:`~bcdet_helpers.research.study.write_ladder`."""
    from ..outputs import claim, mark
    from .ladder import study_profile

    ran = study_profile(folder)
    if profile is not None and ran != profile:
        fix = f"--study with a {profile!r} study (e.g. results/{profile}-cv)"
        raise BcdetError(f"{folder} is a study of the {ran!r} profile, not {profile!r}: pass --profile {ran}, or {fix}."
                         if ran else f"{Path(folder) / 'design.json'} names no profile, so the study cannot be checked "
                         f"against --profile {profile}: pass {fix}.")
    out = Path(out)
    ours = claim(out, force=force, names=EXTERNAL_FILES)
    result = evaluate_external(folder, busbra, **kw)
    result.command = command
    out.mkdir(parents=True, exist_ok=True)
    if ours:  # a folder forced open keeps what else it holds, so it stays unmarked
        mark(out, command or "bcdet_helpers.research.study.external_report.write_external")
    result.save(out / "external.json")
    result.table().to_csv(out / "table.csv", index=False)
    kind = "grouped" if "grouped" in result.kinds else result.kinds[0]
    for name, fig in (("reliability", reliability_figure(result, kind)), ("devices", devices_figure(result, kind))):
        fig.savefig(out / f"{name}.png", dpi=120, bbox_inches="tight")
    (out / "README.md").write_text(external_readme(result))
    return result


def _arm_label(s) -> str:
    return s.arm + (" (ensemble + flip)" if s.rows == "ensemble_tta" else "")


def reliability_figure(result: ExternalStudy, kind: str = "grouped"):
    """Reliability of the malignant-or-not question on BUS-BRA, one line per arm (pooled) and its ensemble."""
    from matplotlib.figure import Figure  # no pyplot: nothing global to close, shown once in Jupyter

    fig = Figure(figsize=(10, 4.6))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, rows in zip(axes, ("pooled", "ensemble_tta")):
        ax.plot([0.5, 1], [0.5, 1], color="grey", lw=1, ls="--", label="calibrated")
        for s in result.scores:
            if (s.kind, s.rows, s.device) != (kind, rows, "all"):
                continue
            bins = [b for b in s.reliability if b["count"]]
            ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o",
                    label=f"{s.arm} (ECE {s.ece.value:.3f})")
        ax.set(xlabel="confidence (malignant or not)", title="every run" if rows == "pooled" else "ensemble + flip TTA",
               xlim=(0.45, 1.02), ylim=(0, 1.02))
        ax.legend(fontsize=8, loc="lower right")
    axes[0].set_ylabel("accuracy")
    fig.suptitle(f"BUS-BRA calibration ({kind} split's runs)")
    fig.tight_layout()
    return fig


def devices_figure(result: ExternalStudy, kind: str = "grouped"):
    """AUC and sensitivity per scanner (and the whole set) with 95 % intervals, one marker per arm; the
    arm's BUSI out-of-fold AUC as a hollow marker at the left."""
    from matplotlib.figure import Figure

    places = ["BUSI (out-of-fold)", "all", *[d for d in result.devices if d not in result.devices_too_small]]
    arms = [a for a in result.arms if any(s.arm == a and s.kind == kind for s in result.scores)]
    fig = Figure(figsize=(11, 4.4))
    axes = fig.subplots(1, 2)
    width = 0.8 / max(len(arms), 1)
    for ax, metric in zip(axes, ("auc", "sensitivity")):
        for i, arm in enumerate(arms):
            xs, vals, lows, highs = [], [], [], []
            for j, place in enumerate(places):
                if place.startswith("BUSI"):
                    try:
                        iv = getattr(result.busi_score(arm, kind), metric)
                    except KeyError:
                        continue
                else:
                    iv = getattr(result.score(arm, kind, "pooled", place), metric)
                xs.append(j - 0.4 + width * (i + 0.5))
                vals.append(iv.value)
                lows.append(iv.value - iv.low if math.isfinite(iv.low) else 0)
                highs.append(iv.high - iv.value if math.isfinite(iv.high) else 0)
            ax.errorbar(xs, vals, yerr=[lows, highs], fmt="o", capsize=3, label=arm)
        ax.set_xticks(range(len(places)), places, rotation=20, ha="right")
        ax.axvline(0.5, color="grey", lw=0.8)
        ax.set(ylabel=metric, title={"auc": "AUC of p(malignant)",
                                     "sensitivity": "malignant sensitivity at the carried-over threshold"}[metric])
    axes[0].legend(fontsize=8)
    fig.suptitle(f"BUS-BRA per scanner, every run pooled ({kind} split); 95 % intervals resample patients and seeds")
    fig.tight_layout()
    return fig


def external_readme(result: ExternalStudy) -> str:
    """The record's README: its tables written from :class:`ExternalStudy`, never by hand."""
    def iv(x: Interval, pct: bool = False) -> str:
        if not math.isfinite(x.value):
            return "–"
        f = (lambda v: f"{100 * v:.1f}") if pct else (lambda v: f"{v:.3f}")
        return f"{f(x.value)} [{f(x.low)}, {f(x.high)}]" if math.isfinite(x.low) else f(x.value)

    kind = "grouped" if "grouped" in result.kinds else result.kinds[0]
    main = []
    for s in result.scores:
        if s.kind != kind or s.device != "all":
            continue
        busi = next((b for b in result.busi if (b.arm, b.kind) == (s.arm, s.kind)), None) if s.rows == "pooled" else None
        main.append(f"| {_arm_label(s)} | {s.n_runs} | {iv(busi.auc) if busi else ''} | {iv(s.auc)} | "
                    f"{iv(s.sensitivity, True)} | {iv(s.specificity, True)} | {iv(s.ece)} | {iv(s.predicted_normal, True)} |")
    per_device = [f"| {s.arm} | {s.device} | {s.n_images} | {s.n_patients} | {iv(s.auc)} | {iv(s.sensitivity, True)} | "
                  f"{iv(s.specificity, True)} | {iv(s.ece)} |"
                  for s in result.scores if s.kind == kind and s.rows == "pooled" and s.device != "all"]
    diffs = [f"| {d.a} - {d.b} | {d.question} | {d.metric} | {d.a_value:.3f} | {d.b_value:.3f} | {iv(d.difference)} |"
             for d in result.differences if d.kind == kind]
    small = ", ".join(f"{k} ({v})" for k, v in result.devices_too_small.items())
    other = [k for k in result.kinds if k != kind]
    also = f"\n`table.csv` and `external.json` also hold the runs of the {', '.join(other)} split.\n" if other else ""
    nl = "\n"
    return f"""# BUS-BRA: the `{result.profile}` study's arms on another hospital's images

Every run of the cross-validated study (`{result.study}/`) predicted every BUS-BRA image with its final weights
right after its test fold (`external/`). This record scores them on the lesion question -- is this lesion
malignant? -- beside the BUSI out-of-fold numbers of the same runs. Written from the study's files and BUS-BRA's
table alone (no model, no image) by

```bash
{result.command}
```

at commit `{result.commit}`, {result.created_at}. {result.n_images} lesion images of {result.n_patients} patients
({', '.join(f'{k}: {v}' for k, v in result.devices.items())}).

- **threshold**: {result.threshold_rule}.
- **ensemble + flip**: {result.ensemble_rule}.
- **intervals** ({100 * (1 - result.alpha):.0f} %, {result.n_boot} resamples): {result.resampled}.

## {kind} split: every arm, whole set

AUC of p(malignant) (BUSI: malignant vs benign and normal, out-of-fold; BUS-BRA: malignant vs benign);
sensitivity, specificity and the share predicted normal in %; ECE of the malignant-or-not question.

| arm | runs | BUSI out-of-fold AUC | BUS-BRA AUC | sensitivity | specificity | ECE | predicted normal |
| --- | ---: | --- | --- | --- | --- | --- | --- |
{nl.join(main)}

## Per scanner (every run pooled)

Scanners with at least {result.min_device_images} lesion images{f'; too few for a row: {small}' if small else ''}.

| arm | scanner | images | patients | AUC | sensitivity | specificity | ECE |
| --- | --- | ---: | ---: | --- | --- | --- | --- |
{nl.join(per_device) if per_device else '| (no scanner with enough images) | | | | | | | |'}

![per scanner](devices.png)

## Paired differences on BUS-BRA

The runs both arms have; every resample draws the same training replicates and patients for both.

| comparison | question | metric | a | b | a - b [95 % CI] |
| --- | --- | --- | ---: | ---: | --- |
{nl.join(diffs) if diffs else '| (no comparison of the study has both arms) | | | | | |'}

![calibration](reliability.png)
{also}
BUS-BRA: {result.citation}.
"""
