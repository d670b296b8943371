#!/usr/bin/env bash
# Offline checks of the operator's packaging (no cluster needed):
#   - helm lint --strict of the chart with default, namespaced and HA values;
#   - helm template of the same, and values.schema.json rejecting bad values;
#   - the operator's RBAC (ClusterRole and per-namespace Roles) grants what the
#     controller uses: Events (events.k8s.io create/patch), pods and events (list);
#   - staleness of crds/, the chart's CRD copy and manifests/install.yaml;
#   - every document of the manifests and examples parses as a Kubernetes object.
# Helm/kubectl come from scripts/install-helm.sh (cached).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
PATH="$("$ROOT/scripts/install-helm.sh"):$PATH"
export PATH
CHART=charts/ferrovus-operator

step() { echo "== $*"; }

variants=(
  ""
  "--set watchNamespaces={team-a,team-b}"
  "--set replicaCount=2 --set leaderElection.enabled=true --set logFormat=text"
  "--set leaderElection.enabled=false --set service.enabled=false --set serviceAccount.create=false --set serviceAccount.name=custom"
)
for v in "${variants[@]}"; do
  step "helm lint --strict $v"
  # shellcheck disable=SC2086
  helm lint --strict "$CHART" $v
  step "helm template $v"
  # shellcheck disable=SC2086
  helm template ferrovus-operator "$CHART" --namespace ferrovus-system --include-crds $v > /tmp/ferrovus-operator-render.yaml
done

step "values.schema.json rejects invalid values"
for bad in "--set logFormat=xml" "--set replicaCount=-1" "--set image.pullPolicy=Sometimes" "--set unknownKey=1"; do
  # shellcheck disable=SC2086
  if helm template ferrovus-operator "$CHART" $bad > /dev/null 2>&1; then
    echo "check: helm accepted invalid values: $bad" >&2
    exit 1
  fi
done

step "several replicas need leader election"
if helm template ferrovus-operator "$CHART" --set replicaCount=2 --set leaderElection.enabled=false > /dev/null 2>&1; then
  echo "check: replicaCount=2 without leader election was accepted" >&2
  exit 1
fi

step "namespaced install renders Roles only"
helm template ferrovus-operator "$CHART" --namespace ferrovus-system --set 'watchNamespaces={team-a}' > /tmp/ferrovus-operator-ns.yaml
if grep -q "^kind: ClusterRole" /tmp/ferrovus-operator-ns.yaml; then
  echo "check: namespaced install must not create ClusterRoles" >&2
  exit 1
fi

step "RBAC lets the controller publish Events and read pods (cluster-wide and namespaced)"
helm template ferrovus-operator "$CHART" --namespace ferrovus-system > /tmp/ferrovus-operator-cluster.yaml
for rendered in /tmp/ferrovus-operator-cluster.yaml /tmp/ferrovus-operator-ns.yaml; do
  python3 - "$rendered" <<'PY'
import sys
try:
    import yaml
except ImportError:
    print("check: PyYAML not available; RBAC left to the cargo tests (operator/tests/install_rbac.rs)")
    sys.exit(0)
path = sys.argv[1]
roles = [d for d in yaml.safe_load_all(open(path)) if d and d.get("kind") in ("ClusterRole", "Role")
         and not d["metadata"]["name"].endswith("-leader-election")]
if not roles:
    sys.exit(f"check: {path}: no operator Role/ClusterRole")
def verbs(rules, group, resource):
    return {v for r in rules if group in r.get("apiGroups", []) and resource in r.get("resources", [])
            for v in r.get("verbs", [])}
for role in roles:
    rules = role.get("rules", [])
    need = [("events.k8s.io", "events", {"create", "patch"}), ("", "pods", {"list"}), ("", "events", {"list"})]
    for group, resource, wanted in need:
        missing = wanted - verbs(rules, group, resource)
        if missing:
            sys.exit(f"check: {path}: {role['kind']} {role['metadata']['name']} lacks {sorted(missing)} on {group or 'core'}/{resource}")
print(f"check: {path}: {len(roles)} role(s) grant Events and pod reads")
PY
done

step "generated files are up to date"
operator/scripts/gen-manifests.sh --check

step "manifests parse"
python3 - <<'PY'
import glob, sys
try:
    import yaml
except ImportError:
    print("check: PyYAML not available; YAML parsing left to the cargo tests")
    sys.exit(0)
files = ["manifests/install.yaml", *sorted(glob.glob("manifests/examples/*.yaml")), *sorted(glob.glob("crds/*.yaml"))]
count = 0
for f in files:
    with open(f) as fh:
        for doc in yaml.safe_load_all(fh):
            if doc is None:
                continue
            for key in ("apiVersion", "kind", "metadata"):
                if key not in doc:
                    sys.exit(f"check: {f}: a document has no {key}")
            if not doc["metadata"].get("name"):
                sys.exit(f"check: {f}: a {doc['kind']} has no name")
            count += 1
print(f"check: {count} objects parsed in {len(files)} files")
PY

step "kubectl (client only)"
kubectl version --client=true -o yaml > /dev/null
echo "check: OK"
