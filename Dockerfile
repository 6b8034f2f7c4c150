# ffnlab for GPU clusters. Build and run (docs/containers.md):
#   docker build -t ffnlab .
#   docker run --rm --gpus all --ipc=host -v "$PWD/work":/workspace ffnlab -m experiment=glu_variants
# Any uid can run it with a read-only root: everything it writes goes under /workspace (mount a volume there).
# `make test-container` builds it from a local Debian base with the CPU wheel (scripts/test_container.sh).

# The CUDA base and the torch wheel's CUDA variant are picked together: the `base` flavour holds only the CUDA
# runtime stub and driver compatibility libraries, and the torch wheel brings its own cuBLAS/cuDNN/NCCL as pip
# packages, so CUDA ships once. Both must name the same CUDA release (12.8 <-> cu128).
ARG BASE_IMAGE=nvidia/cuda:12.8.1-base-ubuntu24.04
FROM ${BASE_IMAGE}
ARG TORCH_CUDA=cu128
# reviewed, not tested: the PyTorch index is unreachable here; the test build passes TORCH_INDEX_URL= and the
# CPU wheel from a local folder (PIP_FIND_LINKS).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/${TORCH_CUDA}
# pip settings for a wheel folder or a proxy's CA bundle; unset on an ordinary build.
ARG PIP_FIND_LINKS
ARG PIP_CERT

ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# Dependencies before the code, so a code edit reuses these layers: torch first from the index of its CUDA
# variant (its version is the one pinned in pyproject.toml), then the rest of the pins, then the build backend.
# The libraries' own test suites (torch's C++ test binaries, pandas/tests, ...: 0.27 GB) are removed in the same
# layer; nothing imports them.
COPY pyproject.toml /tmp/deps/
RUN python -c 'import tomllib; p = tomllib.load(open("/tmp/deps/pyproject.toml", "rb")); \
        open("/tmp/deps/requirements.txt", "w").write("\n".join(p["project"]["dependencies"] + p["build-system"]["requires"]))' \
    && pip install $(grep '^torch==' /tmp/deps/requirements.txt) ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} \
    && pip install -r /tmp/deps/requirements.txt \
    && site=$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))') \
    && find "$site" -depth -type d -name tests -exec rm -rf {} + \
    && rm -rf "$site"/torch/test "$site"/torch/bin/test_* "$site"/torch/bin/*Test

# Test dependencies (pytest, make) only with --build-arg WITH_TESTS=1: the image can then test itself with
# `make test VENV=/opt/venv`. Declared after the dependency layers, so both images share them.
ARG WITH_TESTS=0
RUN if [ "$WITH_TESTS" = 1 ]; then \
        python -c 'import tomllib; print("\n".join(tomllib.load(open("/tmp/deps/pyproject.toml", "rb"))["project"]["optional-dependencies"]["test"]))' \
            > /tmp/deps/test-requirements.txt \
        && pip install -r /tmp/deps/test-requirements.txt \
        && apt-get update && apt-get install -y --no-install-recommends make && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin; \
    fi

# One mountable root for everything a run writes, writable by any uid (clusters run as the submitting user):
# mount a directory at /workspace, and optionally a persistent volume at /workspace/cache (token, HF and compile
# caches shared between sweeps). wandb writes each run into its run directory (conf/logger/wandb.yaml; the
# report's run into the report directory), so WANDB_DIR would have no effect; its settings and caches follow HOME.
# The compile caches default to a path named after the user, which an arbitrary uid does not have.
ENV FFNLAB_OUTPUT_DIR=/workspace/outputs \
    FFNLAB_CACHE_DIR=/workspace/cache/ffnlab \
    HF_HOME=/workspace/cache/huggingface \
    TORCHINDUCTOR_CACHE_DIR=/workspace/cache/torchinductor \
    TRITON_CACHE_DIR=/workspace/cache/triton \
    XDG_CACHE_HOME=/workspace/cache \
    HOME=/workspace/home
RUN mkdir -p /workspace/outputs /workspace/cache /workspace/home \
    && chmod -R 1777 /workspace \
    && useradd --uid 10001 --gid 0 --home-dir /workspace/home --no-create-home --shell /bin/bash ffnlab

# The code last, and the package without its dependencies (editable: config.py finds conf/ and data/ beside src/).
# The venv matches this pyproject.toml (it keys the dependency layers), so the Makefile's install stamp is newer.
WORKDIR /opt/ffnlab
COPY . .
RUN pip install --no-deps --no-build-isolation -e . && python -m compileall -q src scripts train.py \
    && if [ "$WITH_TESTS" = 1 ]; then touch /opt/venv/.installed; fi

USER 10001
# `docker run IMAGE ffn=geglu trainer=gpu` trains (arguments that look like Hydra overrides or flags go to
# train.py, with its absolute path, so Apptainer/enroot's host working directory does not matter);
# `docker run IMAGE python ...` or `IMAGE bash` runs that command.
ENTRYPOINT ["/bin/sh", "-c", "case \"$1\" in ''|-*|*=*|~*|+*) exec python /opt/ffnlab/train.py \"$@\" ;; *) exec \"$@\" ;; esac", "ffnlab"]
