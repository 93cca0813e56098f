#!/bin/sh
# Run a command in the agcc image on this repository, as the calling user (files it writes
# are yours), with the GPUs, the repository mounted at the same path as here (so MLflow's
# absolute artifact locations in mlruns/ resolve both here and in the container) and the
# Hugging Face cache shared with the host. Usage, from the repository root:
#   docker/run.sh dvc repro
#   docker/run.sh agcc predict --model runs:/<run_id>/model --out p.csv clip.wav
# AGCC_IMAGE (default agcc) names the image; DOCKER (default docker) the engine, e.g. podman.
set -eu
hf_cache="${HF_HOME:-$HOME/.cache/huggingface}"
mkdir -p "$hf_cache"
engine="${DOCKER:-docker}"
gpus="--gpus all"
# podman hands GPUs over through CDI (nvidia-ctk cdi generate) rather than --gpus
[ "$(basename "$engine")" = podman ] && gpus="--device nvidia.com/gpu=all"
tty=""
[ -t 0 ] && [ -t 1 ] && tty="-it"
exec "$engine" run --rm $tty $gpus \
    --user "$(id -u):$(id -g)" \
    -v "$PWD":"$PWD" -w "$PWD" \
    -v "$hf_cache":/cache/huggingface \
    -e HF_HUB_OFFLINE -e MLFLOW_TRACKING_URI -e TQDM_DISABLE \
    "${AGCC_IMAGE:-agcc}" "$@"
