#!/usr/bin/env bash
# The docker compose cluster (engine/compose) end to end: builds the images locally (no registry),
# brings up etcd, an S3-compatible server, 2 coordinators, 2 streaming, 2 query, 1 data node and
# 2 proxies, each in its own container, waits until every role answers /readyz, runs the README
# quick start through proxy-1, writes a collection loaded with 2 replicas through proxy-1 and
# reads it back through proxy-2, kills one query node container and checks that searches still
# answer from the other replica, then cuts the active coordinator and a streaming node off the
# network (docker network disconnect) under a mixed load and checks every acknowledged write and
# the etcd audit of leadership terms (engine/tests/python/tools/compose_partitions.py). Always
# tears the cluster down (down -v).
#
#   PROFILE=debug scripts/test-compose.sh     (engine image from target/debug/ferrovus;
#                                              default: a release build)
# Environment:
#   PY             python with pymilvus (default: scripts/pyenv.sh)
#   BUILD_ENGINE=0 use the ferrovus/ferrovus:dev image already built (scripts/test builds it just
#                  before, for the engine image test)
#   BUILD_DEPS=0   use the ferrovus/dev-etcd:dev and ferrovus/dev-s3:dev images already built
#   READY_TIMEOUT  seconds for every role to become ready (default 120)
#   KEEP=1         leave the cluster running (prints how to tear it down)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PY:-$(scripts/pyenv.sh)}"
READY_TIMEOUT="${READY_TIMEOUT:-120}"
COMPOSE_FILE="$ROOT/engine/compose/docker-compose.yml"
start=$SECONDS
say() { echo "compose test [$((SECONDS - start))s]: $*"; }

# docker compose (v2 plugin) or docker-compose; Debian's docker-compose package when neither.
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1 \
    && [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  say "installing Debian's docker-compose"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
fi
if docker compose version >/dev/null 2>&1; then
  COMPOSE=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  COMPOSE=(docker-compose)
else
  echo "compose test: neither 'docker compose' nor 'docker-compose' is installed" >&2
  exit 1
fi

# ---- images ----
if [[ "${BUILD_ENGINE:-1}" != 0 ]]; then
  TAG=dev scripts/build-images.sh engine
fi
if [[ "${BUILD_DEPS:-1}" != 0 ]]; then
  TAG=dev scripts/build-images.sh deps
fi
for image in ferrovus/ferrovus:dev ferrovus/dev-etcd:dev ferrovus/dev-s3:dev; do
  docker image inspect "$image" >/dev/null 2>&1 || { echo "compose test: no image $image" >&2; exit 1; }
done
say "images ready"

# ---- the cluster: a project of its own, every host port chosen by Docker ----
project="ferrovus-compose-$$-$RANDOM"
export FERROVUS_TAG=dev FERROVUS_BIND=127.0.0.1
export FERROVUS_PROXY1_PORT="" FERROVUS_PROXY2_PORT="" FERROVUS_PROXY1_HTTP_PORT=""
compose() { "${COMPOSE[@]}" -p "$project" -f "$COMPOSE_FILE" "$@"; }
ROLES=(coordinator-1 coordinator-2 streaming-1 streaming-2 query-1 query-2 data-1 proxy-1 proxy-2)

ok=0
finish() {
  local rc=$?
  set +e
  if ((ok == 0)); then
    echo "compose test: FAILED (exit $rc); state of the cluster:"
    compose ps
    for s in etcd s3 "${ROLES[@]}"; do
      echo "--- logs of $s (tail)"
      compose logs --no-color --tail 30 "$s" 2>&1 | tail -30
    done
  fi
  if [[ "${KEEP:-0}" == 1 ]]; then
    echo "compose test: cluster kept; tear it down with:"
    echo "  ${COMPOSE[*]} -p $project -f $COMPOSE_FILE down -v"
  else
    compose down -v --remove-orphans -t 15 >/dev/null 2>&1 \
      || echo "compose test: 'down -v' failed for project $project" >&2
    say "torn down"
  fi
  exit "$rc"
}
trap finish EXIT

up_log="$(mktemp)"
compose up -d --no-build >"$up_log" 2>&1 || { cat "$up_log"; rm -f "$up_log"; exit 1; }
rm -f "$up_log"
say "containers started (project $project)"

# host_port SERVICE PORT: the host port Docker published for the service's container port.
host_port() {
  local out
  out="$(compose port "$1" "$2" 2>/dev/null | head -1)"
  [[ "$out" == *:* ]] || return 1
  echo "${out##*:}"
}

declare -A http
deadline=$((SECONDS + READY_TIMEOUT))
pending=("${ROLES[@]}")
while ((${#pending[@]})); do
  left=()
  for s in "${pending[@]}"; do
    if [[ -z "${http[$s]:-}" ]]; then
      http[$s]="$(host_port "$s" 9091 || true)"
    fi
    if [[ -n "${http[$s]}" ]] && curl -fsS -m 2 "http://127.0.0.1:${http[$s]}/readyz" >/dev/null 2>&1; then
      continue
    fi
    left+=("$s")
  done
  pending=("${left[@]+"${left[@]}"}")
  ((${#pending[@]})) || break
  if ((SECONDS > deadline)); then
    echo "compose test: not ready within ${READY_TIMEOUT}s: ${pending[*]}"
    for s in "${pending[@]}"; do
      [[ -n "${http[$s]:-}" ]] && echo "  $s /readyz: $(curl -sS -m 2 "http://127.0.0.1:${http[$s]}/readyz" 2>&1 | head -c 200)"
    done
    exit 1
  fi
  sleep 0.5
done
say "every role answers /readyz (${ROLES[*]})"
compose ps

proxy1="http://127.0.0.1:$(host_port proxy-1 19530)"
proxy2="http://127.0.0.1:$(host_port proxy-2 19530)"

# ---- the README quick start, as-is, through proxy-1 ----
quickstart="$(mktemp)"
"$PY" - "$ROOT/README.md" "$quickstart" <<'PYEOF'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
m = re.search(r"^```python[ \t]*\n(.*?)^```", text, flags=re.S | re.M)
assert m, "README.md has no ```python block"
open(sys.argv[2], "w", encoding="utf-8").write(m.group(1))
PYEOF
FERROVUS_URI="$proxy1" timeout 120 "$PY" "$quickstart" > "$quickstart.out"
rm -f "$quickstart"
tail -3 "$quickstart.out"; rm -f "$quickstart.out"
say "README quick start ran through proxy-1"

# ---- 2 replicas: write through proxy-1, read back through proxy-2 ----
timeout 180 "$PY" - "$proxy1" "$proxy2" <<'PYEOF'
import random, sys, time
from pymilvus import DataType, MilvusClient

p1, p2 = MilvusClient(sys.argv[1]), MilvusClient(sys.argv[2])
name, dim, n = "compose_replicas", 16, 3000
rng = random.Random(7)
schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
schema.add_field("id", DataType.INT64, is_primary=True)
schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
schema.add_field("tag", DataType.VARCHAR, max_length=16)
if p1.has_collection(name):
    p1.drop_collection(name)
p1.create_collection(name, schema=schema)
idx = p1.prepare_index_params()
idx.add_index("vector", index_type="HNSW", metric_type="L2", params={"M": 16, "efConstruction": 64})
p1.create_index(name, idx)
p1.load_collection(name, replica_number=2)
rows = [{"id": i, "vector": [rng.random() for _ in range(dim)], "tag": f"t{i % 7}"} for i in range(n)]
for k in range(0, n, 1000):
    p1.insert(name, rows[k:k + 1000])
p1.flush(name)  # seal: segments go to S3, the data node indexes them, query nodes load them
replicas = p2.describe_replica(name)
nodes = [set(r.group_nodes) for r in replicas]
print(f"replicas (id: query nodes): {', '.join(f'{r.id}: {sorted(r.group_nodes)}' for r in replicas)}")
assert len(replicas) == 2 and all(nodes) and not nodes[0] & nodes[1], replicas

def check(client, via):
    hits = client.search(name, data=[rows[42]["vector"]], limit=3, output_fields=["tag"],
                          search_params={"params": {"ef": 64}})
    assert hits[0][0]["id"] == 42, (via, hits)
    count = client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"]
    assert count == n, (via, count)
    got = client.get(name, ids=[0, 1, 2999], output_fields=["tag"])
    assert sorted(r["id"] for r in got) == [0, 1, 2999] and all(r["tag"] == f"t{r['id'] % 7}" for r in got), (via, got)

check(p1, "proxy-1")
check(p2, "proxy-2")
print(f"{n} rows written through proxy-1 and read back through both proxies (search, count, get)")
PYEOF
say "2-replica collection written through proxy-1, read through proxy-2"

# ---- kill a query node: the other replica answers ----
victim="$(compose ps -q query-1)"
docker kill "$victim" >/dev/null
say "killed query-1 ($(docker inspect -f '{{.State.Status}}' "$victim"))"
timeout 120 "$PY" - "$proxy1" "$proxy2" <<'PYEOF'
import random, sys, time
from pymilvus import MilvusClient

# Searches through both proxies, alternately, for WINDOW seconds after the kill (past the
# query node's session expiry and the coordinator's reaction to it); each must answer
# correctly, retried for at most RETRY seconds.
name, dim, n, WINDOW, RETRY = "compose_replicas", 16, 3000, 12.0, 15.0
rng = random.Random(7)
vectors = [[rng.random() for _ in range(dim)] for _ in range(n)]
clients = [("proxy-1", MilvusClient(sys.argv[1])), ("proxy-2", MilvusClient(sys.argv[2]))]
t_start, searches, retried, slowest, errors = time.monotonic(), 0, 0, 0.0, []
while time.monotonic() - t_start < WINDOW:
    via, client = clients[searches % 2]
    target = rng.randrange(n)
    t0, attempts = time.monotonic(), 0
    while True:
        attempts += 1
        try:
            hits = client.search(name, data=[vectors[target]], limit=3,
                                 search_params={"params": {"ef": 128}})
            assert target in [h["id"] for h in hits[0]], hits
            break
        except Exception as e:  # noqa: BLE001 - retried, then reported
            errors.append(f"{via} {time.monotonic() - t_start:.1f}s: {str(e)[:160]}")
            if time.monotonic() - t0 > RETRY:
                sys.exit(f"{via}: a search did not answer within {RETRY:.0f} s, {time.monotonic() - t_start:.1f} s "
                         f"after the kill; errors:\n" + "\n".join(errors[-5:]))
            time.sleep(0.5)
    searches += 1
    retried += attempts > 1
    slowest = max(slowest, time.monotonic() - t0)
    time.sleep(0.1)
count = clients[1][1].query(name, filter="", output_fields=["count(*)"])[0]["count(*)"]
assert count == n, count
replicas = clients[0][1].describe_replica(name)
print(f"{searches} searches in {WINDOW:.0f} s after the kill, all answered correctly ({retried} needed "
      f"a retry, slowest {slowest:.2f} s); count(*) = {count}; replicas now: "
      f"{', '.join(f'{r.id}: {sorted(r.group_nodes)}' for r in replicas)}")
for e in errors[:5]:
    print(f"  retried after: {e}")
PYEOF
[[ "$(docker inspect -f '{{.State.Running}}' "$victim")" == false ]] \
  || { echo "compose test: query-1 is running again (restarted?)"; exit 1; }
say "searches answer with query-1 down"

# ---- partitions: the active coordinator, then a streaming node, cut off from the network ----
containers="{" sep=""
for s in coordinator-1 coordinator-2 streaming-1 streaming-2; do
  containers+="$sep\"$s\": \"$(compose ps -q "$s")\""
  sep=", "
done
network="$(docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}' \
  "$(compose ps -q coordinator-1)" | awk '{print $1}')"
partition_cfg="{\"network\": \"$network\", \"containers\": $containers},
  \"proxies\": [\"$proxy1\", \"$proxy2\"], \"etcd\": \"http://127.0.0.1:$(host_port etcd 2379)\",
  \"etcd_prefix\": \"ferrovus/\"}"
timeout 600 "$PY" "$ROOT/engine/tests/python/tools/compose_partitions.py" "$partition_cfg"
say "partitions survived: coordinator and streaming node cut off and reconnected"

ok=1
say "passed"
