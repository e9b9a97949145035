"""The whole cross-validated study of a profile with the leakage ladder's extra runs -- its
study.study_design, as notebook 05 and `bcdet study` run it -- on this machine's GPU with --jobs workers; or a
part of it (``--kinds grouped --partitions 0 --no-ladder``: each arm's grouped runs of one fold partition, what the
external test of #30 needs when a call has minutes for no more)."""
import argparse, json, time
from bcdet_helpers.research import study as sd

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="paper")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--kinds", nargs="+", default=None)
    ap.add_argument("--partitions", type=int, nargs="+", default=None)
    ap.add_argument("--no-ladder", action="store_true")
    a = ap.parse_args()
    design = sd.study_design(a.profile, kinds=a.kinds, partitions=a.partitions, ladder=not a.no_ladder)
    print(f"study {design.profile.name}: {len(design.runs())} runs, {a.jobs} job(s) on {a.device}", flush=True)
    t0 = time.time()
    result = sd.run_study(design, device=a.device, jobs=a.jobs)
    print(f"study done in {time.time() - t0:.0f} s; complete: {result.complete}", flush=True)
