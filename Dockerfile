# The image `kopt eval --sandbox docker` runs each evaluation in (see docs/gpu.md).
#
# CPU (default):  docker build -t kopt-eval:latest .
# CUDA:           docker build -t kopt-eval:latest \
#                   --build-arg BASE=nvidia/cuda:12.8.1-devel-ubuntu24.04 \
#                   --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 \
#                   --build-arg EXTRAS=gpu .
# The container runs with no network, a read-only root and a tmpfs /tmp, so everything an
# evaluation needs (compilers, torch, triton, kopt) is installed here, at build time.
ARG BASE=ubuntu:24.04
FROM ${BASE}

ARG TORCH=torch==2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG EXTRAS=
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:$PATH

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev g++ make util-linux ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/venv \
 && pip install --upgrade pip \
 && pip install "${TORCH}" --index-url "${TORCH_INDEX}" \
 && pip install "triton>=3.0"

COPY pyproject.toml README.md /opt/kopt/
COPY agent /opt/kopt/agent
COPY sandboxes /opt/kopt/sandboxes
COPY skills /opt/kopt/skills
COPY benchmarks /opt/kopt/benchmarks
COPY rl_finetune /opt/kopt/rl_finetune
RUN pip install "/opt/kopt${EXTRAS:+[$EXTRAS]}" && python -c "import kopt.sandboxes.docker_sandbox"

# an unprivileged user; nothing in the image is writable by it
RUN useradd --uid 10001 --no-create-home --home-dir /tmp kopt
USER kopt
WORKDIR /tmp
CMD ["python", "-m", "kopt.sandboxes.docker_sandbox", "/job/task.py", "/job/solution.py", "/job/cfg.json"]
