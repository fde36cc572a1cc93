# veil's container image: the daemon (`veil run`) with ONNX Runtime and the verified models.
#
#   docker build -t veil .
#   docker run --rm -p 9464:9464 -v $PWD/config/veil.example.toml:/etc/veil/veil.toml:ro \
#     -e AWS_REGION=eu-west-1 veil
#
# Against LocalStack or MinIO, mount a config with `ingest.endpoint_url` set (see
# config/local.toml) and pass AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. In ECS the task role
# provides the credentials. CPU build: for CUDA hosts, start the runtime stage from an
# nvidia/cuda cuDNN runtime image and install the onnxruntime-gpu library instead.

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

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libstdc++6 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin veil
COPY --from=build /opt/veil /opt/veil
COPY --from=build /usr/local/bin/veil /usr/local/bin/veil
COPY config/veil.example.toml /etc/veil/veil.toml
USER veil
EXPOSE 9464
# SIGTERM (docker stop, ECS) drains in-flight objects for worker.shutdown_grace_s, then exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["veil"]
CMD ["--config", "/etc/veil/veil.toml", "--log-format", "json", "run"]
