#!/usr/bin/env bash
# Mutation testing: how many plausible one-line bugs in the modules of [tool.mutmut]
# (pyproject.toml) the tests catch. Run from the checkout: tools/mutation.sh [GROUP] [MUTANT_GLOB]
#   pip install -e '.[test,mutation]' first. Not part of .ci/run (it takes long: see README).
# GROUP (catalogers, archive, analysis, secrets, registry, cache, jobs: tools/mutation_group.py)
# mutates those modules only, each mutant run with the group's own tests, in a copy of the
# working tree under .mutation/GROUP (MUTATION_COPY=NAME: .mutation/NAME, so two runs of one
# group, say on two modules, do not share a copy); without it, every module in [tool.mutmut],
# in ./mutants.
# 1. mutmut generates the mutants in ./mutants and runs each with the tests that reach it
#    (in this process: a test that runs analyzerd as a subprocess reaches nothing);
# 2. the per-module table is written to mutants/table.md and the survivors to
#    mutants/survivors.txt; `python -m mutmut show NAME` prints one's diff;
# 3. with MUTATION_FULL_SUITE=1, each survivor is run once more against the whole suite,
#    subprocess tests included (the mutant is chosen by an environment variable, which a
#    subprocess inherits): about 7 minutes a survivor, so for a handful, with a MUTANT_GLOB.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
if [ -n "${1:-}" ] && [ "${1#*.}" = "$1" ]; then  # a group name (a mutant glob has a dot)
  group=$1; shift
  copy=".mutation/${MUTATION_COPY:-$group}"
  mkdir -p "$copy"
  tar --exclude=./.mutation --exclude=./mutants --exclude=./.git -cf - . | tar -xf - -C "$copy"
  python tools/mutation_group.py "$group" "$copy/pyproject.toml"
  cd "$copy"
fi
python -m mutmut run --max-children "$(nproc)" ${1:+"$1"}
python -m mutmut results --all true > mutants/results.txt || true
python tools/mutation_table.py < mutants/results.txt | tee mutants/table.md
grep ': survived' mutants/results.txt | cut -d: -f1 | tr -d ' ' > mutants/survivors.txt || true
echo "survivors of the tests that reach them: $(wc -l < mutants/survivors.txt)"
if [ "${MUTATION_FULL_SUITE:-0}" = 1 ]; then
  while read -r name; do
    if (cd mutants && MUTANT_UNDER_TEST="$name" python -m pytest -q -x -p no:cacheprovider tests) \
        >/dev/null 2>&1; then
      echo "$name: survives the whole suite"
    else
      echo "$name: killed by the whole suite"
    fi
  done < mutants/survivors.txt | tee mutants/full-suite.txt
fi
echo "wall time: $(( $(date +%s) - started )) s"
