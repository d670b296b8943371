"""Authentication and role-based access control, with authorisation switched on.

The module starts its own server with authorisation on (the session's server runs with it off,
as the README quick start does): ``--server=ferrovus`` a standalone with
``FERROVUS_SECURITY__AUTHORIZATION_ENABLED=true``; ``--server=cluster`` a cluster of its own
with two proxies (a user created through one logs in through the other); ``--server=milvus``
the real Milvus server from PyPI's ``milvus`` package with ``authorizationEnabled`` (proving the
tests encode Milvus' behaviour). milvus-lite has no authentication: skipped.

Every client is unmodified pymilvus: ``MilvusClient(uri, token="user:password")`` or
``user=``/``password=``.
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import grpc
import pytest
from pymilvus import DataType, MilvusClient, MilvusException

from conftest import ServerHandle, _chosen_kind

ROOT_PASSWORD = "Milvus"  # Milvus' default root password (common.security.defaultRootPassword)
CLUSTER_SECRET = f"cluster-secret-{uuid.uuid4().hex}"
AUTH_ENV = {
    "FERROVUS_SECURITY__AUTHORIZATION_ENABLED": "true",
    "FERROVUS_SECURITY__ROOT_PASSWORD": ROOT_PASSWORD,
    # role-to-role calls carry the cluster's shared secret (ignored by standalone)
    "FERROVUS_CLUSTER__SECRET": CLUSTER_SECRET,
}
DIM = 4


class Secure:
    """A server with authorisation on: ``uris`` are its proxies (one, or two in a cluster)."""

    def __init__(self, kind: str, uris: list[str], stop, cluster=None) -> None:
        self.kind = kind
        self.cluster = cluster
        self.uris = uris
        self.uri = uris[0]
        self._stop = stop
        self._clients: list[MilvusClient] = []

    def login(self, user: str, password: str, uri: str | None = None) -> MilvusClient:
        c = MilvusClient(uri=uri or self.uri, token=f"{user}:{password}")
        self._clients.append(c)
        return c

    def root(self) -> MilvusClient:
        return self.login("root", ROOT_PASSWORD)

    def granted(self, fn):
        """Run ``fn`` right after a grant. Ferrovus applies grants before answering; real Milvus
        answers first and its proxies apply them 0-4 s later (once 14 s), so there it is
        retried while it is denied."""
        if self.kind != "milvus":
            return fn()
        deadline = time.monotonic() + 30
        while True:
            try:
                return fn()
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.PERMISSION_DENIED or time.monotonic() > deadline:
                    raise
            time.sleep(0.2)

    def revoked(self, check) -> None:
        """Run the denial check ``check`` right after a revoke (retried on real Milvus, as
        ``granted``)."""
        if self.kind != "milvus":
            check()
            return
        deadline = time.monotonic() + 30
        while True:
            try:
                check()
                return
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.2)

    def close(self) -> None:
        for c in self._clients:
            try:
                c.close()
            except Exception:  # noqa: BLE001 - best effort
                pass
        self._stop()


@pytest.fixture(scope="module")
def secure(request, tmp_path_factory) -> Secure:
    kind = _chosen_kind(request.config)
    workdir = tmp_path_factory.mktemp("auth-server")
    if kind == "ferrovus":
        h = ServerHandle("ferrovus", workdir, env=AUTH_ENV)
        h.start()
        s = Secure(kind, [h.uri], h.shutdown)
    elif kind == "cluster":
        from cluster_support import OwnCluster  # noqa: PLC0415

        c = OwnCluster(workdir / "cluster", AUTH_ENV, coordinators=1, streaming=1, query=1,
                       data=1, proxies=2).up()
        s = Secure(kind, [c.uri("proxy-1"), c.uri("proxy-2")], c.down, cluster=c)
    elif kind == "milvus":
        sys.path.insert(0, str(Path(__file__).parent / "tools"))
        from milvus_server import MilvusServer  # noqa: PLC0415

        m = MilvusServer(workdir, auth=True, root_password=ROOT_PASSWORD)
        m.start()
        s = Secure(kind, [m.uri], m.stop)
    else:
        pytest.skip(f"no server with authentication to start for --server={kind}")
    yield s
    s.close()


def refusal(fn) -> tuple[str, str]:
    """Run ``fn``, which must be refused at once (no client retries): (code name, message)."""
    t0 = time.monotonic()
    with pytest.raises((MilvusException, grpc.RpcError)) as info:
        fn()
    took = time.monotonic() - t0
    assert took < 10, f"refused only after {took:.1f}s: the client retried it"
    e = info.value
    # A refused login surfaces while pymilvus connects: MilvusException (code 2) caused by the
    # server's gRPC error.
    if isinstance(e, MilvusException) and isinstance(e.__cause__, grpc.RpcError):
        e = e.__cause__
    if isinstance(e, grpc.RpcError):
        return e.code().name, e.details() or ""
    return str(e.code), e.message


def assert_unauthenticated(fn) -> str:
    code, msg = refusal(fn)
    assert code == "UNAUTHENTICATED", (code, msg)
    return msg


def assert_denied(fn, user: str, privilege: str) -> str:
    code, msg = refusal(fn)
    assert code == "PERMISSION_DENIED", (code, msg)
    assert user in msg and privilege in msg, msg
    return msg


def uniq(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def rows(start: int, n: int) -> list[dict]:
    return [{"id": i, "vector": [float(i), 1.0, 0.5, -1.0]} for i in range(start, start + n)]


@pytest.fixture(scope="module")
def coll(secure) -> str:
    """A loaded collection (quick setup: id + 4-d vector, indexed, loaded) with 10 rows."""
    root = secure.root()
    name = uniq("auth")
    root.create_collection(name, dimension=DIM, consistency_level="Strong")
    root.insert(name, rows(0, 10))
    return name


@pytest.fixture
def user(secure):
    """A fresh user with a fresh role: (name, password, role, client); dropped afterwards."""
    root = secure.root()
    name, password, role = uniq("u"), "pw_" + uuid.uuid4().hex[:10], uniq("r")
    root.create_user(name, password)
    root.create_role(role)
    root.grant_role(name, role)
    yield name, password, role, secure.login(name, password)
    try:
        root.drop_role(role, force_drop=True)
    except Exception:  # noqa: BLE001 - pymilvus without force_drop, or a server without it
        for g in root.describe_role(role).get("privileges", []):
            root.revoke_privilege(role, g["object_type"], g["privilege"], g["object_name"])
        root.revoke_role(name, role)
        root.drop_role(role)
    root.drop_user(name)


# ------------------------------------------------------------------------- authentication


def test_root_logs_in_with_the_configured_password(secure):
    assert isinstance(secure.root().list_collections(), list)
    c = MilvusClient(uri=secure.uri, user="root", password=ROOT_PASSWORD)
    try:
        assert "root" in c.list_users()
    finally:
        c.close()


def test_wrong_password_unknown_user_and_no_credentials_are_refused(secure):
    assert_unauthenticated(lambda: secure.login("root", "wrong-password").list_collections())
    assert_unauthenticated(lambda: secure.login("nobody", "whatever1").list_collections())
    assert_unauthenticated(lambda: MilvusClient(uri=secure.uri).list_collections())


def test_user_lifecycle(secure):
    root = secure.root()
    name, pw = uniq("life"), "first_pw1"
    root.create_user(name, pw)
    try:
        assert name in root.list_users()
        assert root.describe_user(name)["user_name"] == name
        secure.login(name, pw).list_collections()
        # Changing the password needs the old one; then only the new one works.
        code, msg = refusal(lambda: root.update_password(name, "not_the_old", "second_pw2"))
        assert "password" in msg.lower(), msg
        root.update_password(name, pw, "second_pw2")
        assert_unauthenticated(lambda: secure.login(name, pw).list_collections())
        secure.login(name, "second_pw2").list_collections()
        # Creating it again is refused.
        refusal(lambda: root.create_user(name, "another_pw"))
    finally:
        root.drop_user(name)
    assert name not in root.list_users()
    assert_unauthenticated(lambda: secure.login(name, "second_pw2").list_collections())


@pytest.mark.parametrize(
    "name,password,field",
    [
        ("1starts_with_digit", "good_pw1", "name"),
        ("has-dash", "good_pw1", "name"),
        ("x" * 33, "good_pw1", "name"),
        ("good_name", "short", "password"),
        ("good_name", "p" * 257, "password"),
    ],
)
def test_invalid_users_are_refused_with_the_reason(secure, name, password, field):
    code, msg = refusal(lambda: secure.root().create_user(name, password))
    assert field in msg.lower(), msg
    assert name not in secure.root().list_users()


def test_root_cannot_be_deleted(secure):
    refusal(lambda: secure.root().drop_user("root"))
    secure.root().list_collections()


def test_a_password_never_appears_in_listings(secure, user):
    name, password, _, _ = user
    root = secure.root()
    shown = repr(root.describe_user(name)) + repr(root.list_users())
    assert password not in shown


# ------------------------------------------------------------------------- roles and grants


def test_roles_list_and_describe(secure, user):
    name, _, role, _ = user
    root = secure.root()
    roles = root.list_roles()
    assert {"admin", "public", role} <= set(roles), roles
    assert role in root.describe_user(name)["roles"]
    root.grant_privilege(role, "Collection", "Search", "some_collection")
    privs = root.describe_role(role)["privileges"]
    assert any(p["privilege"] == "Search" and p["object_name"] == "some_collection"
               and p["object_type"] == "Collection" for p in privs), privs
    refusal(lambda: root.create_role(role))
    refusal(lambda: root.drop_role("admin"))


def test_read_privileges_allow_and_deny(secure, coll, user):
    name, _, role, me = user
    root = secure.root()
    q = [[1.0, 1.0, 0.5, -1.0]]
    assert_denied(lambda: me.search(coll, q, limit=3), name, "Search")
    root.grant_privilege(role, "Collection", "Search", coll)
    hits = secure.granted(lambda: me.search(coll, q, limit=3))
    assert len(hits[0]) == 3
    assert_denied(lambda: me.query(coll, filter="id >= 0", limit=3), name, "Query")
    root.grant_privilege(role, "Collection", "Query", coll)
    assert len(secure.granted(lambda: me.query(coll, filter="id >= 0", limit=3))) == 3
    assert_denied(lambda: me.load_collection(coll), name, "Load")
    root.grant_privilege(role, "Collection", "Load", coll)
    secure.granted(lambda: me.load_collection(coll))
    # Revoking takes it away again.
    root.revoke_privilege(role, "Collection", "Search", coll)
    secure.revoked(lambda: assert_denied(lambda: me.search(coll, q, limit=3), name, "Search"))


def test_write_privileges_allow_and_deny(secure, coll, user):
    name, _, role, me = user
    root = secure.root()
    base = 1000 + (uuid.uuid4().int % 1000) * 10
    assert_denied(lambda: me.insert(coll, rows(base, 2)), name, "Insert")
    root.grant_privilege(role, "Collection", "Insert", coll)
    assert secure.granted(lambda: me.insert(coll, rows(base, 2)))["insert_count"] == 2
    assert_denied(lambda: me.upsert(coll, rows(base, 1)), name, "Upsert")
    root.grant_privilege(role, "Collection", "Upsert", coll)
    secure.granted(lambda: me.upsert(coll, rows(base, 1)))
    assert_denied(lambda: me.delete(coll, ids=[base]), name, "Delete")
    root.grant_privilege(role, "Collection", "Delete", coll)
    secure.granted(lambda: me.delete(coll, ids=[base, base + 1]))
    left = root.query(coll, filter=f"id in [{base}, {base + 1}]", output_fields=["id"])
    assert left == []


def test_a_grant_covers_its_collection_only_unless_it_is_a_wildcard(secure, coll, user):
    name, _, role, me = user
    root = secure.root()
    other = uniq("auth_other")
    root.create_collection(other, dimension=DIM, consistency_level="Strong")
    try:
        root.grant_privilege(role, "Collection", "Query", coll)
        secure.granted(lambda: me.query(coll, filter="id >= 0", limit=1))
        assert_denied(lambda: me.query(other, filter="id >= 0", limit=1), name, "Query")
        root.grant_privilege(role, "Collection", "Query", "*")
        secure.granted(lambda: me.query(other, filter="id >= 0", limit=1))
    finally:
        root.drop_collection(other)


def test_admin_privileges_allow_and_deny(secure, user):
    name, _, role, me = user
    root = secure.root()
    new = uniq("auth_ddl")
    # An explicit schema: the quick setup would also create an index and load.
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    create = lambda: me.create_collection(new, schema=schema)  # noqa: E731
    assert_denied(create, name, "CreateCollection")
    root.grant_privilege(role, "Global", "CreateCollection", "*")
    secure.granted(create)
    try:
        assert_denied(lambda: me.drop_collection(new), name, "DropCollection")
        root.grant_privilege(role, "Global", "DropCollection", "*")
        secure.granted(lambda: me.drop_collection(new))
    finally:
        if root.has_collection(new):
            root.drop_collection(new)
    # User management.
    victim = uniq("v")
    assert_denied(lambda: me.create_user(victim, "victim_pw1"), name, "CreateOwnership")
    root.grant_privilege(role, "Global", "CreateOwnership", "*")
    secure.granted(lambda: me.create_user(victim, "victim_pw1"))
    root.drop_user(victim)


def test_the_admin_role_holds_everything(secure, coll, user):
    name, _, role, me = user
    root = secure.root()
    assert_denied(lambda: me.query(coll, filter="id >= 0", limit=1), name, "Query")
    root.grant_role(name, "admin")
    try:
        secure.granted(lambda: me.query(coll, filter="id >= 0", limit=1))
        victim = uniq("v")
        me.create_user(victim, "victim_pw1")
        me.drop_user(victim)
    finally:
        root.revoke_role(name, "admin")


def test_public_defaults_let_every_user_describe_and_list(secure, coll, user):
    _, _, _, me = user
    assert coll in me.list_collections()
    assert me.describe_collection(coll)["collection_name"] == coll


def test_a_user_changes_its_own_password_but_not_others(secure, user):
    name, password, _, me = user
    other = uniq("o")
    root = secure.root()
    root.create_user(other, "other_pw1")
    try:
        me.update_password(name, password, "changed_pw9")
        secure.login(name, "changed_pw9").list_collections()
        assert_denied(lambda: secure.login(name, "changed_pw9").update_password(
            other, "other_pw1", "stolen_pw1"), name, "UpdateUser")
        secure.login(other, "other_pw1").list_collections()
    finally:
        root.drop_user(other)


def test_v2_grants(secure, coll, user):
    name, _, role, me = user
    root = secure.root()
    assert_denied(lambda: me.query(coll, filter="id >= 0", limit=1), name, "Query")
    try:
        root.grant_privilege_v2(role, "Query", coll, db_name="default")
    except grpc.RpcError as e:
        if secure.kind == "milvus" and e.code() == grpc.StatusCode.UNIMPLEMENTED:
            pytest.skip(f"this Milvus version has no OperatePrivilegeV2: {e.details()}")
        raise
    secure.granted(lambda: me.query(coll, filter="id >= 0", limit=1))
    root.revoke_privilege_v2(role, "Query", coll, db_name="default")
    secure.revoked(
        lambda: assert_denied(lambda: me.query(coll, filter="id >= 0", limit=1), name, "Query"))


# ------------------------------------------------------------------------- several proxies


def test_changes_reach_every_proxy(secure):
    if len(secure.uris) < 2:
        pytest.skip("one proxy")
    root = secure.root()
    name = uniq("p")
    root.create_user(name, "proxy_pw1")
    try:
        secure.login(name, "proxy_pw1", uri=secure.uris[1]).list_collections()
        root.update_password(name, "proxy_pw1", "proxy_pw2")
        # The other proxy follows the catalogue; wait (bounded) until it refuses the old one.
        deadline = time.monotonic() + 10
        while True:
            try:
                MilvusClient(uri=secure.uris[1], token=f"{name}:proxy_pw1").list_collections()
            except (MilvusException, grpc.RpcError):
                break
            assert time.monotonic() < deadline, "proxy-2 still accepts the old password"
            time.sleep(0.1)
        secure.login(name, "proxy_pw2", uri=secure.uris[1]).list_collections()
    finally:
        root.drop_user(name)


# ------------------------------------------------------------------------- internal ports


def _internal_call(port: int, method: str, metadata=()) -> bytes:
    """One raw call of Ferrovus' internal RPC (``ferrovus.internal.Node/Call``, a Frame with the
    method name and an empty body)."""
    name = method.encode()
    frame = b"\x0a" + bytes([len(name)]) + name
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        call = ch.unary_unary("/ferrovus.internal.Node/Call",
                              request_serializer=lambda b: b, response_deserializer=lambda b: b)
        return call(frame, metadata=metadata, timeout=10)


def test_internal_ports_refuse_callers_without_the_cluster_secret(secure):
    if secure.kind != "cluster":
        pytest.skip("only a cluster has internal ports")
    procs = secure.cluster.state()["procs"]
    for name in ("coordinator-1", "streaming-1", "query-1", "data-1"):
        port = procs[name]["grpc_port"]
        for metadata in [(), (("x-ferrovus-cluster-secret", "a-guess"),)]:
            with pytest.raises(grpc.RpcError) as info:
                _internal_call(port, "node.info", metadata)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, (name, info.value)
            assert "secret" in (info.value.details() or ""), info.value.details()
        # With the secret the same call is answered.
        assert _internal_call(port, "node.info", (("x-ferrovus-cluster-secret", CLUSTER_SECRET),))
    # The cluster kept working.
    assert isinstance(secure.root().list_collections(), list)
