# GPU image for agcc: CUDA PyTorch base, then the same pins as `make install` (requirements.txt).
# Build:  docker build -t agcc .
# Run:    docker run --gpus all -v "$PWD":/work --entrypoint dvc agcc repro
#         docker run --gpus all -v "$PWD":/work agcc prepare --help
FROM pytorch/pytorch:2.13.0-cuda12.8-cudnn9-runtime

ENV DVC_NO_ANALYTICS=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1

# espeak-ng + libespeak-ng1: speech with known phoneme timings for the aligner's tests
RUN apt-get update \
    && apt-get install -y --no-install-recommends git libsndfile1 make espeak-ng libespeak-ng1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/agcc
COPY requirements.txt pyproject.toml README.md ./
# torch==2.13.0 is already in the base image, so pip keeps its CUDA build.
RUN python -m pip install -r requirements.txt
COPY src ./src
RUN python -m pip install --no-deps -e .

WORKDIR /work
ENTRYPOINT ["agcc"]
CMD ["--help"]
