"""Dress rehearsal of the ladder path on real BUSI: class profile, the ladder arm only."""
import time
from bcdet_helpers import study as sd
from bcdet_helpers.profiles import get_profile


def main():
    t0 = time.time()
    P = get_profile("class")
    s = sd.run_study(P, arms=["switching"], kinds=["grouped", "random"], seeds={"grouped": [0], "random": [0, 1]},
                     device="cpu", out="/work/rehearsal/cv", jobs=2)
    print("study done", round(time.time() - t0), "s; complete:", s.complete)
    t = sd.write_ladder("/work/rehearsal/cv", "/work/rehearsal/ladder", "switching", command="rehearsal")
    print(t.to_string())
    print("total", round(time.time() - t0), "s")


if __name__ == "__main__":  # the study's workers are spawned processes
    main()
