#!/usr/bin/env bash
# Builds the engine image locally (no registry) and checks that `ferrovus standalone` in it
# becomes live and ready, serves the Milvus protocol to pymilvus, and stops cleanly on SIGTERM.
#   PROFILE=debug scripts/test-engine-image.sh   (reuses target/debug/ferrovus; default release)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PY:-$(scripts/pyenv.sh)}"

TAG=dev scripts/build-images.sh engine
name="ferrovus-image-test-$$"
cleanup() { docker rm -f "$name" >/dev/null 2>&1 || true; }
trap cleanup EXIT

docker run -d --name "$name" -p 127.0.0.1::19530 -p 127.0.0.1::9091 ferrovus/ferrovus:dev >/dev/null
grpc_port="$(docker port "$name" 19530/tcp | head -1 | sed 's/.*://')"
http_port="$(docker port "$name" 9091/tcp | head -1 | sed 's/.*://')"

deadline=$((SECONDS + 60))
until curl -fsS "http://127.0.0.1:$http_port/readyz" >/dev/null 2>&1; do
  if ((SECONDS > deadline)); then
    echo "engine image: /readyz not ready within 60 s"; docker logs "$name" | tail -30; exit 1
  fi
  if [[ "$(docker inspect -f '{{.State.Running}}' "$name")" != true ]]; then
    echo "engine image: container exited"; docker logs "$name" | tail -30; exit 1
  fi
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$http_port/healthz" >/dev/null
echo "engine image: /healthz and /readyz answer"

"$PY" - "$grpc_port" <<'PYEOF'
import sys
from pymilvus import MilvusClient
c = MilvusClient(f"http://127.0.0.1:{sys.argv[1]}")
c.create_collection("image_check", dimension=4)
c.insert("image_check", [{"id": i, "vector": [float(i), 1.0, 0.0, 0.5]} for i in range(10)])
hits = c.search("image_check", data=[[3.0, 1.0, 0.0, 0.5]], limit=1)
assert hits[0][0]["id"] == 3, hits
print("engine image: pymilvus round trip ok")
PYEOF

docker stop -t 20 "$name" >/dev/null
code="$(docker inspect -f '{{.State.ExitCode}}' "$name")"
[[ "$code" == 0 ]] || { echo "engine image: exit code $code after SIGTERM"; docker logs "$name" | tail -20; exit 1; }
echo "engine image: stopped cleanly"
