# The image the pods of a TFJob run (`tilegan-train ... --emit-tfjob`): tilegan and its console scripts.
#   docker build -t tilegan:cpu .                          # CPU
#   docker build --build-arg EXTRA=gpu -t tilegan:gpu .    # NVIDIA GPUs: CUDA and cuDNN come from TensorFlow's
#                                                          # wheels (tensorflow[and-cuda]); the driver from the node
# EXTRA is a pyproject extra that brings TensorFlow: cpu, gpu or tpu. BASE is any image with
# Python 3.11-3.13 and pip.
ARG BASE=python:3.12-slim
FROM ${BASE}
ARG EXTRA=cpu
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 TF_CPP_MIN_LOG_LEVEL=2
# The checkout (minus .dockerignore) so that data manifests and experiment notebooks are found.
WORKDIR /opt/tilegan
COPY . .
RUN python -m pip install ".[${EXTRA}]" && tilegan-train --help > /dev/null
CMD ["tilegan-train", "--help"]
