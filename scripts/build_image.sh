#!/usr/bin/env bash
# Assemble veil's CPU container image without a Docker engine, as an OCI image layout:
#   - base layer: Debian bookworm's libc6, libgcc-s1, libstdc++6, ca-certificates, base-files,
#     netbase and tzdata, extracted by mmdebstrap (no maintainer scripts run, so the CA bundle
#     and the users are written into the next layer);
#   - veil layer: the release binary, the ONNX Runtime library and the verified models, at the
#     paths the Dockerfile uses, config/veil.example.toml as /etc/veil/veil.toml, the veil user
#     (10001) and the CA bundle;
#   - config: entrypoint `veil`, command `--config /etc/veil/veil.toml --log-format json run`,
#     user 10001:10001, port 9464, SIGTERM.
# Usage: scripts/build_image.sh [OUT]   (default .cache/image; the image is OUT/oci:veil).
# Needs mmdebstrap and umoci (scripts/deploy_tools.sh installs them), scripts/setup.sh's runtime
# and models, and builds the release binary. Prints the image's size.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-.cache/image}

cargo build --release --locked --bin veil
rm -rf "$OUT"
mkdir -p "$OUT/app"
OUT=$(cd "$OUT" && pwd)

# The machine's apt sources (deb822 or one-line) tell mmdebstrap where Debian is.
sources=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true)
mmdebstrap --quiet --variant=extract \
  --include=libc6,libgcc-s1,libstdc++6,ca-certificates,base-files,netbase,tzdata \
  bookworm "$OUT/base.tar" - <<<"$sources"

app=$OUT/app
install -D -m 0755 target/release/veil "$app/usr/local/bin/veil"
install -D -m 0644 "$(readlink -f .cache/onnxruntime/libonnxruntime.so)" "$app/opt/veil/onnxruntime/libonnxruntime.so"
install -d "$app/opt/veil/models"
install -m 0644 models/manifest.toml models/README.md models/*.onnx "$app/opt/veil/models/"
install -D -m 0644 config/veil.example.toml "$app/etc/veil/veil.toml"
install -d "$app/etc/ssl/certs"
tar -xf "$OUT/base.tar" -C "$OUT" ./usr/share/ca-certificates/mozilla
cat "$OUT"/usr/share/ca-certificates/mozilla/*.crt >"$app/etc/ssl/certs/ca-certificates.crt"
rm -rf "$OUT/usr"
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nveil:x:10001:10001::/nonexistent:/usr/sbin/nologin\n' >"$app/etc/passwd"
printf 'root:x:0:\nveil:x:10001:\n' >"$app/etc/group"
tar --owner=0 --group=0 --numeric-owner -C "$app" -cf "$OUT/app.tar" .
rm -rf "$app"

image="$OUT/oci:veil"
umoci init --layout "$OUT/oci"
umoci new --image "$image"
umoci raw add-layer --image "$image" "$OUT/base.tar"
umoci raw add-layer --image "$image" "$OUT/app.tar"
umoci config --image "$image" --os linux --architecture amd64 \
  --config.user 10001:10001 --config.workingdir / --config.exposedports 9464/tcp \
  --config.env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --config.entrypoint veil \
  --config.cmd --config --config.cmd /etc/veil/veil.toml --config.cmd --log-format \
  --config.cmd json --config.cmd run \
  --config.stopsignal SIGTERM \
  --config.label org.opencontainers.image.title=veil \
  --config.label "org.opencontainers.image.version=$(target/release/veil --version | cut -d' ' -f2)"
umoci gc --layout "$OUT/oci"
rm -f "$OUT/base.tar" "$OUT/app.tar"
echo "image $image: $(du -sb "$OUT/oci/blobs" | cut -f1) bytes compressed ($(find "$OUT/oci/blobs" -type f | wc -l) blobs)"
