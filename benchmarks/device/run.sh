#!/bin/bash
# One device call (a lent GPU; see README.md here): check the GPU, fake BUSI's file tree from .gpu/, benchmark
# runs/hour (one process vs J workers), then the profile's whole study + leakage-ladder runs the faster way, cut at
# STUDY_S seconds; the study's small outputs (no weights) packed to $OUT. Prepare .gpu/ with prepare.py first.
# TUNE_TRIALS=N first tunes every tuned arm up to N trials for at most TUNE_S seconds (needs .whl/: wheels.sh).
# STUDY_ARGS="--kinds grouped --partitions 0 --no-ladder": a part of the study (study.py).
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
PROFILE=${PROFILE:-paper}; DEV=${DEV:-cuda}; STUDY_S=${STUDY_S:-400}; J=${J:-4}; BENCH=${BENCH:-1}
HERE=benchmarks/device
TUNE_TRIALS=${TUNE_TRIALS:-0}; TUNE_S=${TUNE_S:-400}; ROUND=${ROUND:-6}; SITE=
if [ -d .whl ]; then  # Optuna and its needs, missing from the GPU image (wheels.sh)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 4
  SITE=/tmp/site:; export PYTHONPATH=/tmp/site:$PYTHONPATH
fi
export BCDET_RUNS=/tmp/bcdet-runs BCDET_GIT_COMMIT=$(cat .gpu/commit)
export BCDET_DATA=$(python3 -c "import json;print(json.load(open('.gpu/manifest.json'))['root'])")
# BUS-BRA (#30), when prepare.py found it here: fake_busi.py recreates its table and names there, so every run predicts it
export BCDET_BUSBRA=$(python3 -c "import json;print(json.load(open('.gpu/manifest.json')).get('busbra',{}).get('root','/nonexistent'))")
t0=$(date +%s)
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv 2>&1
  python3 -c "import sys,torch;print(sys.version.split()[0],torch.__version__,torch.cuda.is_available(),torch.get_num_threads())"; } 2>&1 | tee $OUT/env.txt
python3 -c "import glob, lzma, os, shutil
for f in glob.glob('.gpu/cache/*.xz'):  # prepare.py compressed the caches to fit the call
    shutil.copyfileobj(lzma.open(f), open(f[:-3], 'wb')); os.remove(f)"
python3 $HERE/fake_busi.py $BCDET_RUNS 2>&1 | tee -a $OUT/env.txt; [ ${PIPESTATUS[0]} = 0 ] || exit 3
[ -f .gpu/study-$PROFILE.tar.gz ] && tar xzf .gpu/study-$PROFILE.tar.gz -C $BCDET_RUNS  # an earlier call's runs: not retrained
# the improvement ladder so far (pack.py --improve, here or on an earlier call): its finished runs are not retrained
[ -f .gpu/improve-$PROFILE.tar.gz ] && tar xzf .gpu/improve-$PROFILE.tar.gz -C $BCDET_RUNS
export BCDET_FAKE_TREE=1 PYTHONPATH=$SITE$PWD/$HERE/site:$PWD
jobs=$J
if [ "$TUNE_TRIALS" -gt 0 ]; then
  # arms interleaved in rounds of ROUND trials (a `bcdet tune` call spends seconds starting: not rounds of two), so
  # the arms' budgets stay within a round of each other when TUNE_S runs out; the Optuna storage resumes from
  # .gpu/optuna-$PROFILE.db and comes back as $OUT/optuna-$PROFILE.db
  db=$BCDET_RUNS/$PROFILE/tuning/optuna.db; mkdir -p $(dirname $db); end=$(( $(date +%s) + TUNE_S ))
  [ -f .gpu/optuna-$PROFILE.db ] && cp .gpu/optuna-$PROFILE.db $db
  arms=$(python3 -c "from bcdet_helpers.profiles import TUNED_ARMS; print(*TUNED_ARMS)")
  for k in $(seq $ROUND $ROUND $((TUNE_TRIALS - 1))) $TUNE_TRIALS; do for arm in $arms; do
    left=$(( end - $(date +%s) )); [ $left -gt 20 ] || break 2
    timeout -s INT $left python3 -m bcdet_helpers.research.cli tune --profile $PROFILE --arm $arm --trials $k \
      --jobs $J --device $DEV >> $OUT/tune.log 2>&1
  done; done
  python3 -c "import sqlite3; sqlite3.connect('$db').backup(sqlite3.connect('$OUT/optuna-$PROFILE.db'))"
  echo "tuning stopped after $(( $(date +%s) - t0 )) s: $(grep -c 'trial [0-9]*: score' $OUT/tune.log) trials scored" | tee -a $OUT/env.txt
fi
if [ "$BENCH" = 1 ]; then
  timeout 150 python3 benchmarks/throughput.py --profile $PROFILE --device $DEV --runs 8 --epochs 3 --jobs $J \
    --out $OUT/throughput-$PROFILE 2>&1 | tee $OUT/bench.log
  jobs=$(python3 -c "
import json; r=json.load(open('$OUT/throughput-$PROFILE.json'))['results']
one=[v for k,v in r.items() if k.startswith('one')][0]['runs_per_hour']; many=[v for k,v in r.items() if 'workers' in k][0]['runs_per_hour']
print($J if many>one*1.05 else 1)" 2>/dev/null || echo $J)
fi
if [ "$STUDY_S" -gt 0 ]; then
  echo "bench + setup took $(( $(date +%s) - t0 )) s; study with --jobs $jobs for at most $STUDY_S s" | tee -a $OUT/env.txt
  timeout -s INT $STUDY_S python3 $HERE/study.py --profile $PROFILE --device $DEV --jobs $jobs ${STUDY_ARGS:-} \
    > $OUT/study.log 2>&1
  echo "study exit $? after $(( $(date +%s) - t0 )) s" | tee -a $OUT/env.txt
  tail -3 $OUT/study.log; mkdir -p $BCDET_RUNS/$PROFILE/cv
  python3 $HERE/pack.py $BCDET_RUNS $PROFILE $OUT/study-$PROFILE.tar.gz
else
  echo "no study (STUDY_S=0)"
fi
# IMPROVE_RUNGS="baseline imbalance" (#31): then, if the study finished (study.json) and IMPROVE_S seconds are given
# (or END_S: the call's seconds in all, IMPROVE_S what is left of them),
# climb those rungs of the improvement ladder with the arm the new study's validation images choose (not the
# committed results/<profile>-cv's, which improve would read first), packed to $OUT/improve-$PROFILE.tar.gz.
# IMPROVE_ARM=decay: climb on with that arm -- the ladder carried in .gpu/improve-$PROFILE.tar.gz, no study needed
[ -n "${END_S:-}" ] && IMPROVE_S=$(( END_S - ($(date +%s) - t0) - 25 ))  # what is left of END_S seconds in all
if [ -n "${IMPROVE_RUNGS:-}" ] && { [ -n "${IMPROVE_ARM:-}" ] || [ -f $BCDET_RUNS/$PROFILE/cv/study.json ]; } \
   && [ "${IMPROVE_S:-0}" -gt 20 ]; then
  arm=${IMPROVE_ARM:-$(python3 -c "
from bcdet_helpers.profiles import get_profile; from bcdet_helpers.research.study.improve import verdict_arm
arm, why = verdict_arm(get_profile('$PROFILE'), folders=['$BCDET_RUNS/$PROFILE/cv']); print(arm); import sys; print(why, file=sys.stderr)" 2>>$OUT/env.txt)}
  echo "improve: rungs $IMPROVE_RUNGS with arm $arm for at most $IMPROVE_S s" | tee -a $OUT/env.txt
  timeout -s INT $IMPROVE_S python3 -m bcdet_helpers.research.cli improve --profile $PROFILE --rungs $IMPROVE_RUNGS \
    --arm $arm --jobs $jobs --device $DEV > $OUT/improve.log 2>&1
  echo "improve exit $? after $(( $(date +%s) - t0 )) s" | tee -a $OUT/env.txt
  python3 $HERE/pack.py $BCDET_RUNS $PROFILE $OUT/improve-$PROFILE.tar.gz --improve
fi
echo "all done after $(( $(date +%s) - t0 )) s"
