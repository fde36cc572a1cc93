# veil's container image: the daemon (`veil run`) with ONNX Runtime and the verified models.
#
#   docker build -t veil .                        # CPU (the last stage, the default)
#   docker build --target cuda -t veil:cuda .     # NVIDIA GPUs: CUDA 12 + cuDNN 9, onnxruntime-gpu
#   docker run --rm -p 9464:9464 -v $PWD/config/veil.example.toml:/etc/veil/veil.toml:ro \
#     -e AWS_REGION=eu-west-1 veil
#
# Against LocalStack or MinIO, mount a config with `ingest.endpoint_url` set (see
# config/local.toml, or deploy/compose.yaml) and pass AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
# In ECS the task role provides the credentials (deploy/cloudformation/service.yaml). Without a Docker engine,
# scripts/build_image.sh assembles the same CPU image from Debian packages.

# onnxruntime-gpu's newest release on PyPI (the CPU build uses scripts/setup.sh's 1.32.0).
ARG ORT_GPU_VERSION=1.31.1

FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Installs the pinned onnxruntime wheel and downloads, checks (sha256) and prepares the models.
RUN scripts/setup.sh && cargo build --release --locked \
    && mkdir -p /opt/veil/onnxruntime /opt/veil/models \
    && cp -L .cache/onnxruntime/libonnxruntime.so /opt/veil/onnxruntime/ \
    && cp models/manifest.toml models/README.md models/*.onnx /opt/veil/models/ \
    && cp target/release/veil /usr/local/bin/veil

# The GPU build of ONNX Runtime: the runtime and its CUDA provider libraries.
FROM build AS build-cuda
ARG ORT_GPU_VERSION
RUN python3 -m venv /opt/ort-gpu \
    && /opt/ort-gpu/bin/pip install --no-cache-dir "onnxruntime-gpu==${ORT_GPU_VERSION}" \
    && mkdir -p /opt/veil/onnxruntime-gpu \
    && cp -L /opt/ort-gpu/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* \
       /opt/veil/onnxruntime-gpu/libonnxruntime.so \
    && cp -L /opt/ort-gpu/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime_providers_*.so \
       /opt/veil/onnxruntime-gpu/

FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 AS cuda
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libstdc++6 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin veil
COPY --from=build-cuda /opt/veil/onnxruntime-gpu /opt/veil/onnxruntime
COPY --from=build /opt/veil/models /opt/veil/models
COPY --from=build /usr/local/bin/veil /usr/local/bin/veil
COPY config/veil.example.toml /etc/veil/veil.toml
ENV VEIL__RUNTIME__DEVICE=cuda
USER 10001:10001
EXPOSE 9464
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s CMD ["veil", "health"]
ENTRYPOINT ["veil"]
CMD ["--config", "/etc/veil/veil.toml", "--log-format", "json", "run"]

FROM debian:bookworm-slim AS cpu
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libstdc++6 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin veil
COPY --from=build /opt/veil /opt/veil
COPY --from=build /usr/local/bin/veil /usr/local/bin/veil
COPY config/veil.example.toml /etc/veil/veil.toml
USER 10001:10001
EXPOSE 9464
# SIGTERM (docker stop, ECS) drains in-flight objects for worker.shutdown_grace_s, then exits 0.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s CMD ["veil", "health"]
ENTRYPOINT ["veil"]
CMD ["--config", "/etc/veil/veil.toml", "--log-format", "json", "run"]
