#!/usr/bin/env bash
# bash run.sh                              the whole pipeline on the built-in demo data (CPU, no download)
# bash run.sh --world content              the same in the demo's second world (fathom.demo.worlds)
# bash run.sh test [PYTEST ARGS]           set up, then run the test suite
# bash run.sh test-kaggle [PYTEST ARGS]    the fast tier and the `kaggle` tests in .venv-kaggle, built with the
#                                          Kaggle image's versions (requirements-kaggle.txt)
# bash run.sh gpu-check [ARGS]             set up, then the CUDA check (python -m fathom bench gpu) into BENCHMARKS.md
# bash run.sh --data DIR [--images DIR] [--config full|FILE]
#                                          the pipeline on a real competition folder (train on a GPU)
#
# Set-up: creates .venv in the repo root when missing and installs requirements.txt plus this
# package (editable). When python3 already has torch (Kaggle), the venv sees its site-packages, so
# that torch is used instead of installing another. Re-installs only when requirements change.
set -euo pipefail
cd "$(dirname "$0")"
VENV=.venv
PY="$VENV/bin/python"

setup() {
  if [ ! -x "$PY" ]; then
    if python3 -c "import torch" 2>/dev/null; then
      echo "set-up: python3 has torch; creating $VENV on top of it"
      python3 -m venv --system-site-packages "$VENV"
    else
      echo "set-up: creating $VENV"
      python3 -m venv "$VENV"
    fi
  fi
  local stamp="$VENV/.fathom-installed" want
  want=$(cat requirements.txt pyproject.toml setup.py | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "set-up: installing requirements (first run takes a few minutes)"
    "$PY" -m pip install --quiet --disable-pip-version-check -r requirements.txt "setuptools>=70.1"
    "$PY" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
    echo "$want" > "$stamp"
  fi
}

setup_kaggle() {  # .venv-kaggle: requirements.txt under requirements-kaggle.txt's pins (the Kaggle image's versions)
  local venv=.venv-kaggle stamp want
  [ -x "$venv/bin/python" ] || { echo "set-up: creating $venv"; python3 -m venv "$venv"; }
  stamp="$venv/.fathom-installed"
  want=$(cat requirements.txt requirements-kaggle.txt pyproject.toml setup.py | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "set-up: installing the Kaggle image's versions into $venv (first run: a few minutes, about 8 GB)"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt -c requirements-kaggle.txt \
      "setuptools>=70.1"  # builds the editable install (--no-build-isolation) with bdist_wheel built in
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
    echo "$want" > "$stamp"
  fi
}

stage() {  # NAME ARGS...: one `python -m fathom` step, its wall time printed after it
  local started=$SECONDS
  "$PY" -m fathom "$@"
  echo "[run.sh] $1: $((SECONDS - started)) s"
}

pipeline() {  # DATA_DIR FOLDS_CSV CONFIG SUFFIX [--images DIR]: experiments <config>SUFFIX and priorSUFFIX
  local data=$1 folds=$2 config=$3 exp prior=prior$4
  exp=$(basename "${config%.y*ml}")$4; shift 4
  [ -f "$folds" ] || stage folds --data "$data" --n-folds 5 --seed 42 --group dive --out "$folds"
  stage prior --data "$data" --folds "$folds" --exp "$prior" "$@"
  stage submit --data "$data" --exp "$prior" --name "$prior"   # the floor, for comparison
  stage train --data "$data" --folds "$folds" --config "$config" "$@" "name=$exp"
  stage predict --data "$data" --exp "$exp" "$@"               # TTA: OOF and eval, every fold
  stage ensemble --data "$data" --exp "$exp"                   # weights and osd tuned on saved files only
  stage submit --data "$data" --exp "$exp" --name "$exp"       # also submission.csv
  stage validate-submission submissions/submission.csv --data "$data"
  stage report --data "$data" --exp "$exp" --prior "$prior"   # runs/<exp>/report.md; closing lines: gains over the prior
}

if [ "${1:-}" = test-kaggle ]; then
  shift
  setup_kaggle
  exec .venv-kaggle/bin/python -m pytest -m "not slow or kaggle" "$@"
fi
setup
case "${1:-}" in
  test)
    shift
    exec "$PY" -m pytest "$@"
    ;;
  gpu-check)
    shift
    mkdir -p benchmarks
    exec "$PY" -m fathom bench gpu --out benchmarks/gpu.json --benchmarks BENCHMARKS.md "$@"
    ;;
  --data)
    data=${2:?"usage: bash run.sh --data DIR [--images DIR] [--config full|FILE]"}
    shift 2
    config=full images=()
    while [ $# -gt 0 ]; do
      case "$1" in
        --config) config=${2:?"--config needs a value"}; shift 2 ;;
        --images) images=(--images "${2:?"--images needs a value"}"); shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
      esac
    done
    pipeline "$data" folds/train_5fold_seed42_dive.csv "$config" "" "${images[@]}"
    ;;
  ""|--world)
    world=${2:-gain} suffix=""
    [ "${1:-}" = --world ] && [ $# -ne 2 ] && { echo "usage: bash run.sh --world gain|content" >&2; exit 2; }
    [ "$world" = gain ] || suffix=-$world
    SECONDS=0
    stage demo-data --out "data/demo$suffix" --world "$world"
    rm -f "folds/demo${suffix}_5fold_seed42_dive.csv"  # the demo may have been rebuilt: its folds too (seconds)
    pipeline "data/demo$suffix" "folds/demo${suffix}_5fold_seed42_dive.csv" demo "$suffix"
    echo "bash run.sh: the demo pipeline took $((SECONDS / 60)) min $((SECONDS % 60)) s after set-up"
    ;;
  *)
    echo "usage: bash run.sh [--world gain|content | test [PYTEST ARGS] | test-kaggle [PYTEST ARGS] | gpu-check [ARGS] | --data DIR [--images DIR] [--config full|FILE]]" >&2
    exit 2
    ;;
esac
