# GPU image for clusters: docker build -t ffnlab . && docker run --gpus all ffnlab python train.py trainer=gpu
ARG BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
FROM ${BASE_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv python3-pip git \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/ffnlab
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install torch==2.13.0 && pip install -e .
COPY . .
# Writable caches and outputs for any uid (clusters run containers as the submitting user).
ENV FFNLAB_CACHE_DIR=/tmp/ffnlab-cache HF_HOME=/tmp/hf WANDB_DIR=/tmp
CMD ["python", "train.py"]
