#!/bin/bash
# Fill .whl/ (ignored by git) with what the GPU machine lacks for `bcdet tune`: Optuna and the packages it
# needs that its image does not hold (device README: KINDS.md lists the image's packages). The versions are
# this checkout's .venv's, so a trial there runs the code a trial here runs. Run once, here, before a call
# with TUNE_TRIALS > 0; the call names .whl in carry.
set -eu
cd "$(dirname "$0")/../.."
grep -qx "/.whl/" .git/info/exclude 2>/dev/null || echo "/.whl/" >> .git/info/exclude
py=.venv/bin/python
for name in optuna sqlalchemy alembic colorlog mako; do
  version=$($py -c "import importlib.metadata as m; print(m.version('$name'))")
  $py -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "$name==$version"
done
ls .whl
