"""Run milvus-lite as a gRPC server and log every request/response pymilvus sends.

A protocol-discovery aid for the Ferrovus server implementer, not part of the
test suite.  Usage (from the repo root, after scripts/pyenv.sh):

    .venv/bin/python engine/tests/python/tools/trace_milvus_lite.py \
        --data-dir /tmp/trace-data --port 19531 --log /tmp/trace.log
    .venv/bin/pytest engine/tests/python --uri http://127.0.0.1:19531   # or any client

Each line of the log is: method name, then the request and the response in
protobuf text format (long byte strings truncated).
"""

from __future__ import annotations

import argparse
import re
import threading
import time

import grpc
from google.protobuf import text_format

from milvus_lite.adapter.grpc import server as lite_server

_LOCK = threading.Lock()


def _fmt(msg, limit: int) -> str:
    try:
        txt = text_format.MessageToString(msg, as_one_line=True)
    except Exception:  # noqa: BLE001
        txt = repr(msg)
    txt = re.sub(r'"((?:[^"\\]|\\.){200})(?:[^"\\]|\\.)*"', r'"\1..."', txt)
    return txt if len(txt) <= limit else txt[:limit] + " ...<truncated>"


class _Tracer(grpc.ServerInterceptor):
    def __init__(self, path: str, limit: int) -> None:
        self._path = path
        self._limit = limit

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method.rsplit("/", 1)[-1]
        inner = handler.unary_unary
        md = {k: v for k, v in (handler_call_details.invocation_metadata or ())}

        def traced(request, context):
            t0 = time.time()
            resp = inner(request, context)
            dt = (time.time() - t0) * 1000
            with _LOCK, open(self._path, "a", encoding="utf-8") as f:
                f.write(f"=== {method} ({dt:.1f} ms) metadata={md}\n")
                f.write(f"  REQ  {_fmt(request, self._limit)}\n")
                f.write(f"  RESP {_fmt(resp, self._limit)}\n")
            return resp

        return grpc.unary_unary_rpc_method_handler(
            traced,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--port", type=int, default=19531)
    ap.add_argument("--log", default="trace.log")
    ap.add_argument("--limit", type=int, default=4000, help="max chars per message")
    args = ap.parse_args()

    from concurrent import futures

    from pymilvus.grpc_gen import milvus_pb2_grpc

    from milvus_lite.adapter.grpc.servicer import MilvusServicer
    from milvus_lite.db import MilvusLite

    db = MilvusLite(args.data_dir)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=10),
        interceptors=[_Tracer(args.log, args.limit)],
        options=[
            ("grpc.max_receive_message_length", lite_server._MAX_MESSAGE_SIZE),
            ("grpc.max_send_message_length", lite_server._MAX_MESSAGE_SIZE),
        ],
    )
    milvus_pb2_grpc.add_MilvusServiceServicer_to_server(MilvusServicer(db), server)
    server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(f"tracing milvus-lite on 127.0.0.1:{args.port}, log -> {args.log}", flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop(grace=2)
        db.close()


if __name__ == "__main__":
    main()
