"""Server limits: the gRPC message size is configurable and a request beyond it gets a clear
error while the server keeps serving.  Starts its own Ferrovus with a 1 MiB limit."""

import pytest
from pymilvus import MilvusClient

from conftest import ServerHandle


def test_message_size_limit_is_configurable(server, tmp_path, monkeypatch):
    if server.kind != "ferrovus":
        pytest.skip("starts its own ferrovus with grpc.max_message_bytes set (Ferrovus config)")
    monkeypatch.setenv("FERROVUS_GRPC__MAX_MESSAGE_BYTES", str(1 << 20))
    small = ServerHandle("ferrovus", tmp_path)
    small.start()
    try:
        c = MilvusClient(small.uri)
        c.create_collection("big", dimension=128)
        rows = [{"id": i, "vector": [0.25] * 128} for i in range(4000)]  # ~2 MiB of floats
        with pytest.raises(Exception) as e:
            c.insert("big", rows)
        msg = str(e.value).lower()
        assert "message" in msg and ("large" in msg or "length" in msg or "limit" in msg), msg
        # Under the limit, the same server serves.
        c.insert("big", rows[:500])
        res = c.query("big", filter="", output_fields=["count(*)"])
        assert res[0]["count(*)"] == 500
    finally:
        small.shutdown()
