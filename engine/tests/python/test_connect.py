"""Connect handshake, server version, health check (gRPC)."""

from pymilvus import MilvusClient, connections, utility
from pymilvus.grpc_gen import common_pb2, milvus_pb2


def test_milvus_client_connects_and_reports_version(client):
    v = client.get_server_version()
    assert isinstance(v, str) and v.strip(), f"empty server version {v!r}"


def test_orm_connects_and_reports_version(orm):
    v = utility.get_server_version(using=orm)
    assert isinstance(v, str) and v.strip()
    assert connections.has_connection(orm)


def test_connect_rpc_returns_server_info(raw_stub):
    # MilvusClient(uri) starts with Connect; the reply's identifier is sent back by
    # the client as request metadata afterwards.
    resp = raw_stub.Connect(milvus_pb2.ConnectRequest(
        client_info=common_pb2.ClientInfo(sdk_type="Python", sdk_version="e2e")))
    assert resp.status.code == 0 and resp.status.error_code == 0, resp.status


def test_check_health(raw_stub):
    resp = raw_stub.CheckHealth(milvus_pb2.CheckHealthRequest())
    assert resp.status.code == 0 and resp.status.error_code == 0, resp.status
    assert resp.isHealthy is True


def test_many_clients(live_server):
    clients = [MilvusClient(uri=live_server.uri) for _ in range(4)]
    try:
        for c in clients:
            assert c.get_server_version()
    finally:
        for c in clients:
            c.close()
