#!/usr/bin/env python3
"""Check engine/proto/proto/*.proto against the descriptors shipped in pymilvus.

pymilvus embeds the upstream milvus-proto FileDescriptorProtos in
`pymilvus/grpc_gen/*_pb2.py`; they are what a real client puts on the wire.
This script compiles our .proto files with `protoc --descriptor_set_out`, then
checks that every package, message, field, oneof, enum, enum value, service
and method WE define exists in pymilvus' descriptors with the same full name,
field number, type, label, type name, oneof membership, proto3 `optional`
flag, and the same request/response types and streaming flags.

Our files may omit fields, enum values and methods (listed as warnings), but
may never rename, renumber or retype anything (errors, exit status 1).
`--strict` turns omitted fields/enum values into errors too.

Usage, from anywhere:

    pip install "pymilvus==3.0.2"   # the version the team pins
    python3 engine/proto/check_against_pymilvus.py [--strict] [--protoc PATH]

Needs `protoc` (Debian: protobuf-compiler) on PATH or via --protoc/$PROTOC.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2

PROTO_DIR = Path(__file__).resolve().parent / "proto"
F = descriptor_pb2.FieldDescriptorProto

TYPE_NAMES = {v: k for k, v in F.Type.items()}
LABEL_NAMES = {v: k for k, v in F.Label.items()}


def pymilvus_files() -> list[descriptor_pb2.FileDescriptorProto]:
    from pymilvus.grpc_gen import common_pb2, feder_pb2, milvus_pb2, msg_pb2, rg_pb2, schema_pb2

    return [
        descriptor_pb2.FileDescriptorProto.FromString(m.DESCRIPTOR.serialized_pb)
        for m in (common_pb2, schema_pb2, feder_pb2, msg_pb2, rg_pb2, milvus_pb2)
    ]


def our_files(protoc: str, proto_dir: Path) -> list[descriptor_pb2.FileDescriptorProto]:
    protos = sorted(p.name for p in proto_dir.glob("*.proto"))
    if not protos:
        sys.exit(f"no .proto files under {proto_dir}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ours.pb"
        cmd = [protoc, f"-I{proto_dir}", f"--descriptor_set_out={out}", "--include_imports", *protos]
        res = subprocess.run(cmd, cwd=proto_dir, capture_output=True, text=True)
        if res.returncode != 0:
            sys.exit(f"protoc failed ({' '.join(cmd)}):\n{res.stderr}")
        fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    # --include_imports may pull google/protobuf/*; we only check our own Milvus files
    # (internal.proto, package ferrovus.internal, is Ferrovus' own role-to-role service).
    return [f for f in fds.file if f.name in protos and f.package.startswith("milvus.")]


class Symbols:
    """Everything defined by a list of files, keyed by full name (no dot)."""

    def __init__(self, files):
        self.msgs: dict[str, descriptor_pb2.DescriptorProto] = {}
        self.enums: dict[str, descriptor_pb2.EnumDescriptorProto] = {}
        self.services: dict[str, descriptor_pb2.ServiceDescriptorProto] = {}
        self.packages: set[str] = set()
        for fd in files:
            self.packages.add(fd.package)
            self._walk(fd.package, fd.message_type, fd.enum_type)
            for s in fd.service:
                self.services[f"{fd.package}.{s.name}"] = s

    def _walk(self, prefix, msgs, enums):
        for e in enums:
            self.enums[f"{prefix}.{e.name}"] = e
        for m in msgs:
            full = f"{prefix}.{m.name}"
            self.msgs[full] = m
            self._walk(full, m.nested_type, m.enum_type)


def oneof_of(m: descriptor_pb2.DescriptorProto, f) -> str | None:
    if f.HasField("oneof_index"):
        return m.oneof_decl[f.oneof_index].name
    return None


def packed_of(f) -> bool | None:
    return f.options.packed if f.options.HasField("packed") else None


def describe(f) -> str:
    return (
        f"#{f.number} {LABEL_NAMES[f.label]} {TYPE_NAMES[f.type]}"
        + (f" {f.type_name}" if f.type_name else "")
        + (" proto3_optional" if f.proto3_optional else "")
    )


def compare(ours: Symbols, ref: Symbols, strict: bool):
    errors: list[str] = []
    warnings: list[str] = []

    for pkg in sorted(ours.packages):
        if pkg not in ref.packages:
            errors.append(f"package {pkg}: not a pymilvus package ({sorted(ref.packages)})")

    for name, e in sorted(ours.enums.items()):
        r = ref.enums.get(name)
        if r is None:
            errors.append(f"enum {name}: does not exist in pymilvus")
            continue
        rv = {v.name: v.number for v in r.value}
        ov = {v.name: v.number for v in e.value}
        for vname, num in ov.items():
            if vname not in rv:
                errors.append(f"enum {name}.{vname} = {num}: no such value in pymilvus")
            elif rv[vname] != num:
                errors.append(f"enum {name}.{vname}: ours = {num}, pymilvus = {rv[vname]}")
        for vname in rv.keys() - ov.keys():
            (errors if strict else warnings).append(f"enum {name}.{vname} = {rv[vname]}: omitted")

    for name, m in sorted(ours.msgs.items()):
        r = ref.msgs.get(name)
        if r is None:
            errors.append(f"message {name}: does not exist in pymilvus")
            continue
        if m.options.map_entry != r.options.map_entry:
            errors.append(f"message {name}: map_entry ours={m.options.map_entry} pymilvus={r.options.map_entry}")
        rf = {f.name: f for f in r.field}
        rnum = {f.number: f for f in r.field}
        for f in m.field:
            g = rf.get(f.name)
            where = f"field {name}.{f.name}"
            if g is None:
                other = rnum.get(f.number)
                hint = f" (number {f.number} is `{other.name}` there)" if other else ""
                errors.append(f"{where} {describe(f)}: no such field in pymilvus{hint}")
                continue
            diffs = []
            if f.number != g.number:
                diffs.append(f"number {f.number} != {g.number}")
            if f.type != g.type:
                diffs.append(f"type {TYPE_NAMES[f.type]} != {TYPE_NAMES[g.type]}")
            if f.label != g.label:
                diffs.append(f"label {LABEL_NAMES[f.label]} != {LABEL_NAMES[g.label]}")
            if f.type_name != g.type_name:
                diffs.append(f"type_name {f.type_name or '-'} != {g.type_name or '-'}")
            if f.proto3_optional != g.proto3_optional:
                diffs.append(f"proto3_optional {f.proto3_optional} != {g.proto3_optional}")
            if oneof_of(m, f) != oneof_of(r, g):
                diffs.append(f"oneof {oneof_of(m, f)} != {oneof_of(r, g)}")
            if packed_of(f) != packed_of(g):
                diffs.append(f"packed {packed_of(f)} != {packed_of(g)}")
            if diffs:
                errors.append(f"{where}: ours vs pymilvus: " + "; ".join(diffs))
        omitted = [f for f in r.field if f.name not in {x.name for x in m.field}]
        for g in omitted:
            (errors if strict else warnings).append(f"field {name}.{g.name} {describe(g)}: omitted")

    for name, s in sorted(ours.services.items()):
        r = ref.services.get(name)
        if r is None:
            errors.append(f"service {name}: does not exist in pymilvus")
            continue
        rm = {x.name: x for x in r.method}
        for x in s.method:
            y = rm.get(x.name)
            if y is None:
                errors.append(f"method {name}.{x.name}: does not exist in pymilvus")
                continue
            for attr in ("input_type", "output_type", "client_streaming", "server_streaming"):
                a, b = getattr(x, attr), getattr(y, attr)
                if a != b:
                    errors.append(f"method {name}.{x.name}: {attr} ours={a} pymilvus={b}")
        missing = len(rm) - len({x.name for x in s.method} & rm.keys())
        warnings.append(f"service {name}: {len(s.method)} of {len(rm)} methods defined ({missing} omitted)")

    return errors, warnings


def main() -> int:
    ap = argparse.ArgumentParser(description="Check our .proto files against pymilvus' descriptors.")
    ap.add_argument("--strict", action="store_true", help="omitted fields/enum values are errors")
    ap.add_argument("--protoc", default=os.environ.get("PROTOC") or shutil.which("protoc"))
    ap.add_argument("--proto-dir", type=Path, default=PROTO_DIR, help="directory of our .proto files")
    ap.add_argument("-q", "--quiet", action="store_true", help="do not list omissions")
    args = ap.parse_args()
    if not args.protoc:
        sys.exit("protoc not found: install protobuf-compiler or pass --protoc")

    try:
        import pymilvus
    except ImportError:
        sys.exit('pymilvus is not installed: pip install "pymilvus==3.0.2"')

    ours = Symbols(our_files(args.protoc, args.proto_dir))
    ref = Symbols(pymilvus_files())
    errors, warnings = compare(ours, ref, args.strict)

    if warnings and not args.quiet:
        print("omitted (allowed):")
        for w in warnings:
            print(f"  {w}")
    print(
        f"checked against pymilvus {pymilvus.__version__}: {len(ours.msgs)} messages, "
        f"{len(ours.enums)} enums, "
        f"{sum(len(s.method) for s in ours.services.values())} methods"
    )
    if errors:
        print(f"\n{len(errors)} MISMATCH(ES) with pymilvus:")
        for e in errors:
            print(f"  {e}")
        return 1
    print("OK: every definition matches pymilvus")
    return 0


if __name__ == "__main__":
    sys.exit(main())
