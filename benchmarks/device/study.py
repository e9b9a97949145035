"""The whole cross-validated study of a profile with the leakage ladder's extra runs, as notebook 05
runs it (run_study + ladder_extra_runs), on this machine's GPU with --jobs workers."""
import argparse, json, time
from bcdet_helpers import study as sd
from bcdet_helpers.plan import study_runs, study_seeds
from bcdet_helpers.profiles import get_profile

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="paper")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--device", default="cuda")
    a = ap.parse_args()
    P = get_profile(a.profile)
    seeds_of = study_seeds(P)
    extra = sd.ladder_extra_runs(P, seeds_of)
    print(f"study {P.name}: {len(study_runs(P))} runs, {a.jobs} job(s) on {a.device}", flush=True)
    t0 = time.time()
    result = sd.run_study(P, arms=P.schedules, kinds=P.splits, seeds=seeds_of, device=a.device, extra=extra, jobs=a.jobs)
    print(f"study done in {time.time() - t0:.0f} s; complete: {result.complete}", flush=True)
