#!/usr/bin/env bash
# Builds the Ferrovus container images locally, with no registry: each image is
# `FROM scratch` over a root filesystem this script assembles from a release
# binary and the shared libraries `ldd` reports for it.
#
#   scripts/build-images.sh [operator|engine|all]     (default: all)
#
# Images:
#   ferrovus/ferrovus-operator:$TAG   (operator/Dockerfile, binary ferrovus-operator)
#   ferrovus/ferrovus:$TAG            (engine/Dockerfile if present, binary ferrovus)
#   ferrovus/dev-etcd:$TAG, ferrovus/dev-s3:$TAG   (`deps`: development stand-ins for the
#       docker compose cluster in engine/compose and the e2e tests on a real node: the host's
#       etcd, and tools/dev-s3 — s3s-fs with MinIO's command line and health endpoints)
# Environment:
#   TAG            image tag (default: the workspace version, e.g. 0.1.0); also tagged :dev
#   CARGO_TARGET_DIR  where release binaries are (default: target)
#   SKIP_BUILD=1   use existing release binaries instead of running cargo build
#   STRIP=0        keep debug info in the image's binary
#   KIND_CLUSTER   if set, `kind load docker-image` the images into that cluster
#   K3D_CLUSTER    if set, `k3d image import` the images into that cluster
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
TAG="${TAG:-$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

# assemble_rootfs BINARY DEST: DEST/rootfs with the binary in /usr/local/bin,
# its shared libraries at their paths, /etc/passwd+group (uid 65532), CA certs, /tmp.
assemble_rootfs() {
  local bin="$1" dest="$2"
  local rootfs="$dest/rootfs"
  rm -rf "$rootfs"
  mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc/ssl/certs" "$rootfs/tmp"
  chmod 1777 "$rootfs/tmp"
  cp "$bin" "$rootfs/usr/local/bin/"
  # the release profile keeps line tables for backtraces: drop them from the image
  if [[ "${STRIP:-1}" == 1 ]] && command -v strip >/dev/null 2>&1; then
    strip --strip-debug "$rootfs/usr/local/bin/$(basename "$bin")"
  fi
  # shared libraries (absolute paths printed by ldd), incl. the dynamic loader
  if ldd "$bin" > "$dest/ldd.txt" 2>&1; then
    grep -oE '/[^ ]+' "$dest/ldd.txt" | sort -u | while read -r lib; do
      [[ -e "$lib" ]] || continue
      mkdir -p "$rootfs$(dirname "$lib")"
      cp -L "$lib" "$rootfs$lib"
    done
  fi
  if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
  fi
  printf 'root:x:0:0:root:/:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$rootfs/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' > "$rootfs/etc/group"
  mkdir -p "$rootfs/home/nonroot"
  # an empty directory the Dockerfiles may COPY --chown to writable paths
  mkdir -p "$dest/empty"
}

build_image() {
  local name="$1" binary="$2" dockerfile="$3" package="$4"
  # PROFILE=debug reuses the debug build (tests); images for users are release builds.
  local profile="${PROFILE:-release}"
  local bin="$TARGET_DIR/$profile/$binary"
  if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    if [[ "$profile" == release ]]; then
      cargo build --release -p "$package" --bin "$binary"
    else
      cargo build -p "$package" --bin "$binary"
    fi
  fi
  [[ -x "$bin" ]] || { echo "build-images: $bin not found" >&2; exit 1; }
  local ctx
  ctx="$(mktemp -d)"
  assemble_rootfs "$bin" "$ctx"
  cp "$dockerfile" "$ctx/Dockerfile"
  docker build --quiet -t "$name:$TAG" -t "$name:dev" "$ctx" >&2
  rm -rf "$ctx"
  echo "build-images: built $name:$TAG ($name:dev)"
  if [[ -n "${KIND_CLUSTER:-}" ]]; then kind load docker-image "$name:$TAG" --name "$KIND_CLUSTER"; fi
  if [[ -n "${K3D_CLUSTER:-}" ]]; then k3d image import "$name:$TAG" -c "$K3D_CLUSTER"; fi
}

# ---- operator part ----
build_operator() {
  build_image ferrovus/ferrovus-operator ferrovus-operator operator/Dockerfile ferrovus-operator
}

# ---- engine part (the lead owns engine/; a default Dockerfile is used until engine/Dockerfile exists) ----
build_engine() {
  local dockerfile=engine/Dockerfile
  if [[ ! -f "$dockerfile" ]]; then
    dockerfile="$(mktemp)"
    cat > "$dockerfile" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
COPY --chown=65532:65532 empty/ /var/lib/ferrovus/
USER 65532:65532
ENV FERROVUS_DATA_DIR=/var/lib/ferrovus
EXPOSE 19530 19531 9091
ENTRYPOINT ["/usr/local/bin/ferrovus"]
CMD ["standalone"]
DOCKERFILE
  fi
  build_image ferrovus/ferrovus ferrovus "$dockerfile" ferrovus
}

# ---- development dependencies of engine/compose and of the e2e tests on a real node ----
# build_dep NAME BINARY ALIAS: the binary is the image's entrypoint and is also on PATH as ALIAS
# (the operator runs the in-cluster etcd as `etcd ARGS`; the object store image gets MinIO's
# arguments, `server /data --address :9000`, through its entrypoint).
build_dep() {
  local name="$1" bin="$2" alias="$3"
  local ctx
  ctx="$(mktemp -d)"
  STRIP=0 assemble_rootfs "$bin" "$ctx"
  mv "$ctx/rootfs/usr/local/bin/$(basename "$bin")" "$ctx/rootfs/usr/local/bin/entrypoint"
  ln "$ctx/rootfs/usr/local/bin/entrypoint" "$ctx/rootfs/usr/local/bin/$alias"
  cp engine/compose/Dockerfile.dep "$ctx/Dockerfile"
  docker build --quiet -t "$name:$TAG" -t "$name:dev" "$ctx" >&2
  rm -rf "$ctx"
  echo "build-images: built $name:$TAG ($name:dev)"
}

build_deps() {
  local etcd s3 profile="${PROFILE:-release}"
  etcd="$(command -v etcd)" || { echo "build-images: etcd not found (apt-get install etcd-server)" >&2; exit 1; }
  # the workspace's development S3 server (s3s-fs with MinIO's command line and health checks)
  s3="$TARGET_DIR/$profile/ferrovus-dev-s3"
  if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    if [[ "$profile" == release ]]; then
      cargo build --release -p ferrovus-dev-s3 >&2
    else
      cargo build -p ferrovus-dev-s3 >&2
    fi
  fi
  [[ -x "$s3" ]] || { echo "build-images: $s3 not found" >&2; exit 1; }
  build_dep ferrovus/dev-etcd "$etcd" etcd
  build_dep ferrovus/dev-s3 "$s3" minio
}

for what in "${@:-all}"; do
  case "$what" in
    operator) build_operator ;;
    engine) build_engine ;;
    deps) build_deps ;;
    all) build_operator; build_engine ;;
    *) echo "usage: $0 [operator|engine|deps|all]..." >&2; exit 2 ;;
  esac
done
