#!/usr/bin/env bash
# Smoke test of the operator image (needs Docker): builds it with
# scripts/build-images.sh, then runs it (host network) against a stub API
# server on 127.0.0.1 that serves empty lists and idle watches, and checks that
# the operator starts its controllers and answers /healthz, /readyz and /metrics.
#   operator/scripts/test-image.sh        (SKIP_BUILD=1 reuses target/release)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
API_PORT="${API_PORT:-18443}"
HTTP_PORT="${HTTP_PORT:-18080}"
IMAGE="ferrovus/ferrovus-operator:dev"

if ! docker info > /dev/null 2>&1; then
  echo "test-image: Docker is not available; skipped"
  exit 0
fi
scripts/build-images.sh operator

work="$(mktemp -d)"
name="ferrovus-operator-smoke-$$"
cleanup() {
  docker rm -f "$name" > /dev/null 2>&1 || true
  [[ -n "${stub_pid:-}" ]] && kill "$stub_pid" 2> /dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cat > "$work/stub.py" <<'PY'
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Stub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        sys.stderr.write("stub: %s %s\n" % (self.command, self.path))
    def do_GET(self):
        if "watch=true" in self.path or "watch=1" in self.path:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            time.sleep(30)
            return
        body = json.dumps({"kind": "List", "apiVersion": "v1",
                           "metadata": {"resourceVersion": "1"}, "items": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Stub).serve_forever()
PY
python3 "$work/stub.py" "$API_PORT" 2> "$work/stub.log" &
stub_pid=$!
for _ in $(seq 1 50); do
  curl -fsS "http://127.0.0.1:$API_PORT/api" > /dev/null 2>&1 && break
  sleep 0.2
done

cat > "$work/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: stub, cluster: {server: "http://127.0.0.1:$API_PORT"}}]
users: [{name: stub, user: {token: stub}}]
contexts: [{name: stub, context: {cluster: stub, user: stub, namespace: default}}]
current-context: stub
KC
chmod 644 "$work/kubeconfig"

docker run -d --name "$name" --network host \
  -v "$work/kubeconfig:/kubeconfig:ro" -e KUBECONFIG=/kubeconfig \
  -e LEADER_ELECTION=false -e WATCH_NAMESPACES=smoke -e HTTP_ADDR="127.0.0.1:$HTTP_PORT" \
  "$IMAGE" > /dev/null

ok=0
for _ in $(seq 1 30); do
  if curl -fsS "http://127.0.0.1:$HTTP_PORT/readyz" > /dev/null 2>&1; then ok=1; break; fi
  sleep 1
done
if [[ $ok != 1 ]]; then
  echo "test-image: operator never became ready" >&2
  docker logs "$name" >&2 || true
  exit 1
fi
curl -fsS "http://127.0.0.1:$HTTP_PORT/healthz" > /dev/null
curl -fsS "http://127.0.0.1:$HTTP_PORT/metrics" | grep -q ferrovus_operator_reconciliations_total
sleep 2
grep -q "milvusclusters" "$work/stub.log" || { echo "test-image: no MilvusCluster list/watch seen" >&2; exit 1; }
grep -q "statefulsets" "$work/stub.log" || { echo "test-image: no owned-object watch seen" >&2; exit 1; }
docker logs "$name" 2>&1 | grep -q "starting MilvusCluster controller"
echo "test-image: OK (image runs, controllers watch, /healthz /readyz /metrics answer)"
