#!/usr/bin/env python3
"""Regenerate engine/proto/proto/*.proto from the descriptors pymilvus ships.

pymilvus embeds the FileDescriptorProtos of the upstream milvus-proto files in
`pymilvus/grpc_gen/*_pb2.py`.  Those descriptors are exactly what the client
puts on the wire, so they are our source of truth.  This script takes the
MilvusService methods listed in METHODS (plus the messages/enums in EXTRA),
computes the transitive closure of every message they reference, and writes a
.proto file per upstream package with ALL fields of every included message
(nothing the client sends is dropped).  Differences from upstream that do not
change the wire:

* custom options (`common.privilege_ext_obj`), `deprecated` markers and
  go/java/csharp file options are left out (prost would turn `deprecated` into
  `#[deprecated]`, and setting the legacy `Status.error_code` is required);
* methods not in METHODS and messages nobody references are left out;
* comments are our own.

Usage (from the repository root, with the pinned pymilvus installed):

    pip install "pymilvus==3.0.2"
    python3 engine/proto/gen_from_pymilvus.py           # rewrite the files
    python3 engine/proto/gen_from_pymilvus.py --check   # fail if they would change
    python3 engine/proto/check_against_pymilvus.py      # verify field by field

To support another RPC, add its name to METHODS and rerun.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from google.protobuf import descriptor_pb2

PROTO_DIR = Path(__file__).resolve().parent / "proto"

# MilvusService methods Ferrovus exposes.  Order here is irrelevant: the
# service is emitted in upstream order.
METHODS = """
CreateCollection DropCollection HasCollection LoadCollection ReleaseCollection
DescribeCollection GetCollectionStatistics ShowCollections AlterCollection
RenameCollection
CreatePartition DropPartition HasPartition LoadPartitions ReleasePartitions
GetPartitionStatistics ShowPartitions
GetLoadingProgress GetLoadState
CreateIndex DescribeIndex GetIndexState GetIndexBuildProgress DropIndex
Insert Delete Upsert Search HybridSearch Flush Query GetFlushState
GetPersistentSegmentInfo GetQuerySegmentInfo GetReplicas
GetMetrics GetComponentStates GetVersion CheckHealth Connect AllocTimestamp
ListDatabases CreateDatabase DropDatabase DescribeDatabase
CreateAlias DropAlias AlterAlias DescribeAlias ListAliases
CreateCredential UpdateCredential DeleteCredential ListCredUsers
CreateRole DropRole OperateUserRole SelectRole SelectUser
OperatePrivilege OperatePrivilegeV2 SelectGrant
""".split()

# Types no method references directly but that travel inside `bytes` fields
# (SearchRequest.placeholder_group is a serialized PlaceholderGroup) or that
# the server needs to speak about.
EXTRA = [
    "milvus.proto.common.PlaceholderGroup",
    "milvus.proto.common.PlaceholderValue",
    "milvus.proto.common.PlaceholderType",
    "milvus.proto.common.Blob",
    "milvus.proto.common.ErrorCode",
    "milvus.proto.common.SegmentState",
    "milvus.proto.common.IndexState",
    "milvus.proto.common.LoadState",
    "milvus.proto.common.ConsistencyLevel",
    "milvus.proto.common.DslType",
    "milvus.proto.common.MsgType",
    "milvus.proto.common.StateCode",
    "milvus.proto.schema.DataType",
    "milvus.proto.schema.FunctionType",
]

# Upstream file name -> (our file name, package).  Order = emission order.
FILES = [
    ("common.proto", "milvus.proto.common"),
    ("schema.proto", "milvus.proto.schema"),
    ("msg.proto", "milvus.proto.msg"),
    ("milvus.proto", "milvus.proto.milvus"),
]

# Short comments of our own for the most important definitions.
COMMENTS = {
    "milvus.proto.common.Status": (
        "Result of every RPC.  Milvus >= 2.3 clients read `code` (merr codes,\n"
        "0 = success); older clients read the legacy `error_code`.  pymilvus\n"
        "treats a status as success only when BOTH are 0."
    ),
    "milvus.proto.common.PlaceholderGroup": (
        "SearchRequest.placeholder_group carries this message serialized to bytes."
    ),
    "milvus.proto.common.PlaceholderValue": (
        "One search input: `values` holds one entry per query vector (for\n"
        "FloatVector: dim little-endian f32s)."
    ),
    "milvus.proto.schema.FieldData": "One column of an insert/upsert or of a result set.",
    "milvus.proto.schema.IDs": "Primary keys, either int64 or varchar.",
    "milvus.proto.schema.SearchResultData": (
        "Flattened search results: `topks[i]` hits for query i, laid out\n"
        "consecutively in `ids`/`scores`/`fields_data`."
    ),
    "milvus.proto.milvus.MilvusService": (
        "Subset of the upstream MilvusService: same service name, method names\n"
        "and message types, so unmodified pymilvus clients talk to Ferrovus."
    ),
}

SCALAR = {
    descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE: "double",
    descriptor_pb2.FieldDescriptorProto.TYPE_FLOAT: "float",
    descriptor_pb2.FieldDescriptorProto.TYPE_INT64: "int64",
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT64: "uint64",
    descriptor_pb2.FieldDescriptorProto.TYPE_INT32: "int32",
    descriptor_pb2.FieldDescriptorProto.TYPE_FIXED64: "fixed64",
    descriptor_pb2.FieldDescriptorProto.TYPE_FIXED32: "fixed32",
    descriptor_pb2.FieldDescriptorProto.TYPE_BOOL: "bool",
    descriptor_pb2.FieldDescriptorProto.TYPE_STRING: "string",
    descriptor_pb2.FieldDescriptorProto.TYPE_BYTES: "bytes",
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT32: "uint32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SFIXED32: "sfixed32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SFIXED64: "sfixed64",
    descriptor_pb2.FieldDescriptorProto.TYPE_SINT32: "sint32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SINT64: "sint64",
}
F = descriptor_pb2.FieldDescriptorProto


def load_pymilvus_files() -> dict[str, descriptor_pb2.FileDescriptorProto]:
    """Upstream file name -> FileDescriptorProto, as shipped by pymilvus."""
    from pymilvus.grpc_gen import common_pb2, milvus_pb2, msg_pb2, schema_pb2

    out = {}
    for mod in (common_pb2, schema_pb2, msg_pb2, milvus_pb2):
        fd = descriptor_pb2.FileDescriptorProto.FromString(mod.DESCRIPTOR.serialized_pb)
        out[fd.name] = fd
    return out


class Index:
    """Full name (no leading dot) -> DescriptorProto / EnumDescriptorProto."""

    def __init__(self, files):
        self.msgs: dict[str, descriptor_pb2.DescriptorProto] = {}
        self.enums: dict[str, descriptor_pb2.EnumDescriptorProto] = {}
        self.file_of: dict[str, str] = {}
        for fname, fd in files.items():
            self._walk(fname, fd.package, fd.message_type, fd.enum_type)

    def _walk(self, fname, prefix, msgs, enums):
        for e in enums:
            self.enums[f"{prefix}.{e.name}"] = e
            self.file_of[f"{prefix}.{e.name}"] = fname
        for m in msgs:
            full = f"{prefix}.{m.name}"
            self.msgs[full] = m
            self.file_of[full] = fname
            self._walk(fname, full, m.nested_type, m.enum_type)


def closure(idx: Index, service, methods, extra) -> set[str]:
    keep: set[str] = set()

    def visit(name: str):
        if name in keep:
            return
        keep.add(name)
        parent = name.rsplit(".", 1)[0]
        if parent in idx.msgs:  # nested type: its parent must exist too
            visit(parent)
        m = idx.msgs.get(name)
        if m is None:
            return
        for f in m.field:
            if f.type_name:
                visit(f.type_name.lstrip("."))

    by_name = {m.name: m for m in service.method}
    missing = [x for x in methods if x not in by_name]
    if missing:
        sys.exit(f"methods not in pymilvus' MilvusService: {missing}")
    for name in methods:
        visit(by_name[name].input_type.lstrip("."))
        visit(by_name[name].output_type.lstrip("."))
    for name in extra:
        if name not in idx.msgs and name not in idx.enums:
            sys.exit(f"EXTRA type not found in pymilvus descriptors: {name}")
        visit(name)
    return keep


def rel_name(type_name: str, package: str) -> str:
    full = type_name.lstrip(".")
    if full.startswith(package + "."):
        return full[len(package) + 1 :]
    assert full.startswith("milvus.proto."), full
    return full[len("milvus.proto.") :]


def comment(lines: list[str], indent: str, full: str):
    text = COMMENTS.get(full)
    if text:
        for line in text.split("\n"):
            lines.append(f"{indent}// {line}".rstrip())


def field_type(f, idx: Index, package: str) -> str:
    if f.type in (F.TYPE_MESSAGE, F.TYPE_ENUM):
        return rel_name(f.type_name, package)
    return SCALAR[f.type]


def emit_enum(lines, e, full, indent):
    comment(lines, indent, full)
    lines.append(f"{indent}enum {e.name} {{")
    if e.options.allow_alias:
        lines.append(f"{indent}  option allow_alias = true;")
    for v in e.value:
        lines.append(f"{indent}  {v.name} = {v.number};")
    lines.append(f"{indent}}}")


def emit_message(lines, m, full, idx, keep, package, indent):
    comment(lines, indent, full)
    lines.append(f"{indent}message {m.name} {{")
    inner = indent + "  "
    map_entries = {
        f"{full}.{n.name}": n for n in m.nested_type if n.options.map_entry
    }
    for e in m.enum_type:
        emit_enum(lines, e, f"{full}.{e.name}", inner)
    for n in m.nested_type:
        nf = f"{full}.{n.name}"
        if n.options.map_entry or nf not in keep:
            continue
        emit_message(lines, n, nf, idx, keep, package, inner)
    if m.reserved_range:
        parts = []
        for r in m.reserved_range:  # end is exclusive
            parts.append(str(r.start) if r.end == r.start + 1 else f"{r.start} to {r.end - 1}")
        lines.append(f"{inner}reserved {', '.join(parts)};")
    if m.reserved_name:
        lines.append(f"{inner}reserved {', '.join(repr(n).replace(chr(39), chr(34)) for n in m.reserved_name)};")

    def field_line(f, ind):
        tn = f.type_name.lstrip(".")
        if tn in map_entries and f.label == F.LABEL_REPEATED:
            entry = map_entries[tn]
            k, v = entry.field[0], entry.field[1]
            return f"{ind}map<{field_type(k, idx, package)}, {field_type(v, idx, package)}> {f.name} = {f.number};"
        label = ""
        if f.label == F.LABEL_REPEATED:
            label = "repeated "
        elif f.proto3_optional:
            label = "optional "
        return f"{ind}{label}{field_type(f, idx, package)} {f.name} = {f.number};"

    emitted_oneofs = set()
    for f in m.field:
        real_oneof = f.HasField("oneof_index") and not f.proto3_optional
        if not real_oneof:
            lines.append(field_line(f, inner))
            continue
        oi = f.oneof_index
        if oi in emitted_oneofs:
            continue
        emitted_oneofs.add(oi)
        lines.append(f"{inner}oneof {m.oneof_decl[oi].name} {{")
        for g in m.field:
            if g.HasField("oneof_index") and g.oneof_index == oi and not g.proto3_optional:
                lines.append(field_line(g, inner + "  "))
        lines.append(f"{inner}}}")
    lines.append(f"{indent}}}")


HEADER = """\
// GENERATED by engine/proto/gen_from_pymilvus.py from the descriptors shipped
// in pymilvus {version} (pymilvus/grpc_gen/{upstream}); do not edit by hand.
// Subset of the public milvus-proto definitions: names, field numbers, types
// and enum values are identical to upstream; engine/proto/check_against_pymilvus.py
// verifies that.  Only RPCs Ferrovus serves (and the messages they reach) are
// kept, each message with all of its fields.
"""


def render(files, idx: Index, keep: set[str], methods, version) -> dict[str, str]:
    out = {}
    for upstream, package in FILES:
        fd = files[upstream]
        body: list[str] = []
        deps: set[str] = set()

        for name in keep:
            if idx.file_of.get(name) != upstream:
                continue
            m = idx.msgs.get(name)
            if m is None:
                continue
            for f in m.field:
                if f.type_name:
                    dep = idx.file_of[f.type_name.lstrip(".")]
                    if dep != upstream:
                        deps.add(dep)

        for e in fd.enum_type:
            full = f"{package}.{e.name}"
            if full in keep:
                body.append("")
                emit_enum(body, e, full, "")
        for m in fd.message_type:
            full = f"{package}.{m.name}"
            if full in keep:
                body.append("")
                emit_message(body, m, full, idx, keep, package, "")

        svc_lines: list[str] = []
        for s in fd.service:
            wanted = [x for x in s.method if x.name in methods]
            if not wanted:
                continue
            full = f"{package}.{s.name}"
            svc_lines.append("")
            comment(svc_lines, "", full)
            svc_lines.append(f"service {s.name} {{")
            for x in wanted:
                for d in (x.input_type, x.output_type):
                    dep = idx.file_of[d.lstrip(".")]
                    if dep != upstream:
                        deps.add(dep)
                cs = "stream " if x.client_streaming else ""
                ss = "stream " if x.server_streaming else ""
                svc_lines.append(
                    f"  rpc {x.name}({cs}{rel_name(x.input_type, package)}) "
                    f"returns ({ss}{rel_name(x.output_type, package)}) {{}}"
                )
            svc_lines.append("}")

        if not body and not svc_lines:
            continue
        head = [HEADER.format(version=version, upstream=upstream.replace(".proto", "_pb2.py"))]
        head.append('syntax = "proto3";')
        head.append("")
        head.append(f"package {package};")
        if deps:
            head.append("")
            order = [u for u, _ in FILES]
            for dep in sorted(deps, key=order.index):
                head.append(f'import "{dep}";')
        text = "\n".join(head + svc_lines + body) + "\n"
        out[upstream] = text
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="fail if the files on disk differ")
    args = ap.parse_args()

    import pymilvus

    files = load_pymilvus_files()
    idx = Index(files)
    svc = next(s for s in files["milvus.proto"].service if s.name == "MilvusService")
    keep = closure(idx, svc, METHODS, EXTRA)
    rendered = render(files, idx, keep, set(METHODS), pymilvus.__version__)

    stale = []
    for name, text in rendered.items():
        path = PROTO_DIR / name
        old = path.read_text() if path.exists() else None
        if old != text:
            stale.append(name)
            if not args.check:
                PROTO_DIR.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    if args.check:
        if stale:
            print(f"out of date (rerun gen_from_pymilvus.py): {', '.join(stale)}")
            return 1
        print("proto files are up to date")
        return 0
    nmsg = sum(1 for k in keep if k in idx.msgs and not idx.msgs[k].options.map_entry)
    nenum = sum(1 for k in keep if k in idx.enums)
    print(f"wrote {', '.join(rendered)} ({len(METHODS)} methods, {nmsg} messages, {nenum} enums)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
