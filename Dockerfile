# GPU image for agcc: the CUDA PyTorch base and the pinned dependencies, nothing of the code.
# The code is the repository mounted at run time (docker/entrypoint.sh puts its src/ on the
# path), so what runs is what DVC hashes. Build and run (docs/container.md):
#   docker build -t agcc .
#   docker/run.sh dvc repro                 # = docker run --gpus all --user $(id -u):$(id -g)
#   docker/run.sh agcc segments --help      #   -v "$PWD":"$PWD" -w "$PWD" -v HF cache ... agcc
# Fully qualified, so that podman (no unqualified-search registry by default) finds it too.
FROM docker.io/pytorch/pytorch:2.13.0-cuda12.8-cudnn9-runtime

# HOME and the caches are writable for any --user; HF_HOME is a mount point for the host's
# Hugging Face cache (docker/run.sh mounts ~/.cache/huggingface there).
ENV DVC_NO_ANALYTICS=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    HF_HOME=/cache/huggingface \
    MPLCONFIGDIR=/tmp/matplotlib

# espeak-ng + libespeak-ng1: speech with known phoneme timings for the aligner's tests
RUN apt-get update \
    && apt-get install -y --no-install-recommends git libsndfile1 make espeak-ng libespeak-ng1 \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /cache/huggingface && chmod 1777 /cache /cache/huggingface

WORKDIR /opt/agcc
COPY requirements.txt requirements.lock ./
# torch==2.13.0 is already in the base image (its CUDA build): the lock, without its CPU torch
# line, constrains every other package to the versions the tests ran with.
RUN grep -v '^torch==' requirements.lock > constraints.txt \
    && python -m pip install -r requirements.txt -c constraints.txt \
    && python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
COPY docker/entrypoint.sh /usr/local/bin/agcc-entrypoint
# `agcc` runs the mounted repository's code (PYTHONPATH set by the entry point).
RUN printf '#!/bin/sh\nexec python -m agcc.cli "$@"\n' > /usr/local/bin/agcc \
    && chmod 755 /usr/local/bin/agcc /usr/local/bin/agcc-entrypoint

VOLUME ["/cache/huggingface"]
ENTRYPOINT ["agcc-entrypoint"]
CMD ["agcc", "--help"]
