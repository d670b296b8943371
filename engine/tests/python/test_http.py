"""The HTTP side port of `ferrovus standalone`: /healthz, /readyz, /metrics."""

import re

from conftest import http_get, require
from helpers import quick_collection, rand_vectors, rows


def test_healthz(live_server):
    require(live_server, "http")
    status, _ = http_get(f"{live_server.http_url}/healthz")
    assert status == 200


def test_readyz_when_serving(live_server, client):
    require(live_server, "http")
    assert client.get_server_version()
    status, _ = http_get(f"{live_server.http_url}/readyz")
    assert status == 200


def test_unknown_path_is_404(live_server):
    require(live_server, "http")
    status, _ = http_get(f"{live_server.http_url}/no-such-endpoint")
    assert status == 404


def test_metrics_prometheus_text(live_server, client, collection_name):
    require(live_server, "http", "metrics")
    # make some traffic so the per-RPC series exist
    quick_collection(client, collection_name, dim=4)
    client.insert(collection_name, rows(rand_vectors(5, 4)))
    client.search(collection_name, rand_vectors(1, 4).tolist(), limit=2)
    client.query(collection_name, filter="id >= 0", output_fields=["id"])
    status, body = http_get(f"{live_server.http_url}/metrics")
    assert status == 200
    names = set(re.findall(r"^(ferrovus_[a-zA-Z0-9_:]+)", body, flags=re.M))
    assert names, "no ferrovus_ metrics exported"
    assert re.search(r"^# TYPE ferrovus_\w+ (counter|gauge|histogram|summary)", body, re.M), \
        "metrics lack Prometheus # TYPE lines"
    # per-RPC request counts must mention the RPCs just used
    for rpc in ("Insert", "Search", "Query"):
        assert re.search(rf'^ferrovus_\w+\{{[^}}]*"{rpc}"[^}}]*\}}', body, re.M), \
            f"no per-RPC metric series for {rpc}"
