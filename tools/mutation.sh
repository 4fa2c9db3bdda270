#!/usr/bin/env bash
# Mutation testing: how many plausible one-line bugs in the modules of [tool.mutmut]
# (pyproject.toml) the tests catch. Run from the checkout: tools/mutation.sh [MUTANT_GLOB]
#   pip install -e '.[test,mutation]' first. Not part of .ci/run (it takes long: see README).
# 1. mutmut generates the mutants in ./mutants and runs each with the tests that reach it;
# 2. the survivors are listed (mutmut results), and `mutmut show NAME` prints one's diff;
# 3. each survivor is run once more against the whole suite (slow, so only for them):
#    a survivor the whole suite kills is only a gap in the module's fast tests.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
python -m mutmut run ${1:+"$1"}
python -m mutmut results > mutants/survivors.txt || true
echo "survivors of the fast tests: $(grep -c ': survived' mutants/survivors.txt || true)"
if [ "${MUTATION_FULL_SUITE:-1}" = 1 ]; then
  for name in $(grep ': survived' mutants/survivors.txt | cut -d: -f1); do
    if (cd mutants && MUTANT_UNDER_TEST="$name" python -m pytest -q -x -p no:cacheprovider tests) \
        >/dev/null 2>&1; then
      echo "$name: survives the whole suite"
    else
      echo "$name: killed by the whole suite"
    fi
  done | tee mutants/full-suite.txt
fi
echo "wall time: $(( $(date +%s) - started )) s"
