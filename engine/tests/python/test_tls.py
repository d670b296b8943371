"""TLS on the Milvus port: one-way (``security.tls_mode=1``) and mutual (``tls_mode=2``).

Certificates are made for the test with the ``openssl`` command: a CA, a server certificate for
``localhost``/127.0.0.1 signed by it, a client certificate signed by it, and a second, unrelated
CA. Each mode starts its own Ferrovus standalone (the session's server runs without TLS); the
clients are unmodified pymilvus (``secure=True`` with ``server_pem_path``, or
``client_pem_path``/``client_key_path``/``ca_pem_path``) and, for the refusals, plain grpcio
channels (pymilvus shares one connection per address and token, so a second client with other
TLS settings would not open a new one).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import grpc
import pytest
from pymilvus import MilvusClient
from pymilvus.grpc_gen import milvus_pb2, milvus_pb2_grpc

from conftest import ServerHandle, start_own_standalone

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _ca(d: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-keyout", f"{name}.key", "-out", f"{name}.pem", "-subj", f"/CN={name}", cwd=d)


def _leaf(d: Path, name: str, ca: str, ext: str) -> None:
    (d / f"{name}.ext").write_text(ext)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
             "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-days", "2", "-out", f"{name}.pem",
             "-extfile", f"{name}.ext", cwd=d)


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("certs")
    _ca(d, "ca")
    _ca(d, "other-ca")
    _leaf(d, "server", "ca", "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                             "extendedKeyUsage=serverAuth\n")
    _leaf(d, "client", "ca", "extendedKeyUsage=clientAuth\n")
    _leaf(d, "stranger", "other-ca", "extendedKeyUsage=clientAuth\n")
    return d


def _start(request, tmp_path_factory, certs: Path, mode: int) -> ServerHandle:
    # the harness' plaintext gRPC readiness ping cannot pass: wait for /readyz only
    return start_own_standalone(request, tmp_path_factory, f"tls{mode}", {
        "FERROVUS_SECURITY__TLS_MODE": str(mode),
        "FERROVUS_SECURITY__TLS__SERVER_PEM_PATH": str(certs / "server.pem"),
        "FERROVUS_SECURITY__TLS__SERVER_KEY_PATH": str(certs / "server.key"),
        "FERROVUS_SECURITY__TLS__CA_PEM_PATH": str(certs / "ca.pem"),
    }, grpc_probe=False)


@pytest.fixture(scope="module")
def one_way(request, tmp_path_factory, certs):
    h = _start(request, tmp_path_factory, certs, 1)
    yield h
    h.shutdown()


@pytest.fixture(scope="module")
def mutual(request, tmp_path_factory, certs):
    h = _start(request, tmp_path_factory, certs, 2)
    yield h
    h.shutdown()


def _version(target: str, creds: grpc.ChannelCredentials | None) -> str:
    """GetVersion over a raw channel (TLS with ``creds``, plaintext without)."""
    opts = [("grpc.ssl_target_name_override", "localhost")]
    ch = grpc.secure_channel(target, creds, options=opts) if creds else grpc.insecure_channel(target)
    with ch:
        stub = milvus_pb2_grpc.MilvusServiceStub(ch)
        return stub.GetVersion(milvus_pb2.GetVersionRequest(), timeout=5).version


def _creds(certs: Path, ca: str = "ca", client: str | None = None) -> grpc.ChannelCredentials:
    key = (certs / f"{client}.key").read_bytes() if client else None
    chain = (certs / f"{client}.pem").read_bytes() if client else None
    return grpc.ssl_channel_credentials((certs / f"{ca}.pem").read_bytes(), key, chain)


def _use(c: MilvusClient, name: str) -> None:
    c.create_collection(name, dimension=4, consistency_level="Strong")
    try:
        c.insert(name, [{"id": i, "vector": [float(i), 0.0, 1.0, 0.5]} for i in range(5)])
        hits = c.search(name, [[1.0, 0.0, 1.0, 0.5]], limit=2)
        assert len(hits[0]) == 2
    finally:
        c.drop_collection(name)


def test_one_way_tls_serves_pymilvus_with_the_server_ca(one_way, certs):
    c = MilvusClient(uri=f"https://localhost:{one_way.grpc_port}", secure=True,
                     server_pem_path=str(certs / "ca.pem"), server_name="localhost")
    try:
        _use(c, "tls_one_way")
    finally:
        c.close()


def test_one_way_tls_refuses_plaintext_and_a_wrong_ca(one_way, certs):
    target = f"127.0.0.1:{one_way.grpc_port}"
    assert _version(target, _creds(certs))
    with pytest.raises(grpc.RpcError) as info:
        _version(target, _creds(certs, ca="other-ca"))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value
    with pytest.raises(grpc.RpcError):
        _version(target, None)
    # The server is still up after the failed handshakes.
    assert _version(target, _creds(certs))


def test_mutual_tls_serves_pymilvus_with_a_client_certificate(mutual, certs):
    c = MilvusClient(uri=f"https://localhost:{mutual.grpc_port}", secure=True,
                     client_pem_path=str(certs / "client.pem"),
                     client_key_path=str(certs / "client.key"),
                     ca_pem_path=str(certs / "ca.pem"), server_name="localhost")
    try:
        _use(c, "tls_mutual")
    finally:
        c.close()


def test_mutual_tls_refuses_clients_without_a_trusted_certificate(mutual, certs):
    target = f"127.0.0.1:{mutual.grpc_port}"
    assert _version(target, _creds(certs, client="client"))
    for creds in (_creds(certs), _creds(certs, client="stranger")):
        with pytest.raises(grpc.RpcError) as info:
            _version(target, creds)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value
    assert _version(target, _creds(certs, client="client"))


def test_a_missing_certificate_stops_the_start_with_the_key_named(tmp_path):
    from conftest import ferrovus_bin  # noqa: PLC0415
    if not ferrovus_bin().exists():
        pytest.skip("needs the ferrovus binary")
    env = {"FERROVUS_SECURITY__TLS_MODE": "1",
           "FERROVUS_SECURITY__TLS__SERVER_PEM_PATH": str(tmp_path / "nope.pem"),
           "FERROVUS_SECURITY__TLS__SERVER_KEY_PATH": str(tmp_path / "nope.key"),
           "PATH": "/usr/bin:/bin"}
    r = subprocess.run([str(ferrovus_bin()), "standalone", "--data-dir", str(tmp_path / "d"),
                        "--grpc-port", "0", "--http-port", "0"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "security.tls.server_pem_path" in out and "nope.pem" in out, out[-2000:]
