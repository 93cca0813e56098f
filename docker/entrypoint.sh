#!/bin/sh
# Entry point of the agcc image: run the code of the repository mounted as the working
# directory (never a copy baked into the image), after a GPU check.
#   docker/run.sh dvc repro            (see docs/container.md for the plain docker command)
#   docker/run.sh agcc segments --help
# A first argument that is not a program on PATH is taken as an agcc subcommand.
set -eu

repo="$(pwd)"
if [ ! -f "$repo/pyproject.toml" ] || [ ! -d "$repo/src/agcc" ]; then
    echo "agcc image: $repo is not the agcc repository; mount it and make it the working" \
         "directory: -v \"\$PWD\":\"\$PWD\" -w \"\$PWD\"" >&2
    exit 2
fi
# The mounted code is the code that runs and the code DVC hashes.
export PYTHONPATH="$repo/src${PYTHONPATH:+:$PYTHONPATH}"
# The repository belongs to the host user, not to the container's: tell git it is safe
# (command-line scope, the only one besides system/global that git honours for this key).
export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=safe.directory GIT_CONFIG_VALUE_0="$repo"

if [ "${AGCC_SKIP_GPU_CHECK:-0}" != 1 ]; then
    python - <<'PY' >&2
import torch

if torch.cuda.is_available():
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    print(f"agcc image: torch {torch.__version__}, GPU: {', '.join(names)}")
else:
    print(
        f"agcc image: torch {torch.__version__} sees NO GPU; stages with device auto run on "
        "the CPU (start the container with --gpus all, and check the NVIDIA container toolkit)"
    )
PY
fi

if [ "$#" -eq 0 ]; then
    set -- agcc --help
elif ! command -v "$1" >/dev/null 2>&1; then
    set -- agcc "$@"
fi
exec "$@"
