//! Generates the Milvus wire types and the tonic `MilvusService` server and
//! client from `proto/{common,schema,msg,milvus}.proto` (a verified subset of
//! milvus-proto, see `check_against_pymilvus.py`), and the internal
//! `ferrovus.internal.Node` service from `proto/internal.proto`.  The .proto files are parsed by
//! `protox`, a protobuf compiler in Rust, so building needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const PROTOS: &[&str] = &[
        "proto/common.proto",
        "proto/schema.proto",
        "proto/msg.proto",
        "proto/milvus.proto",
    ];
    for p in PROTOS {
        println!("cargo:rerun-if-changed={p}");
    }

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // The generated `Client::connect(dst)` constructor would clash with the
        // `Connect` RPC's `connect(&mut self, ..)` method.  Build clients with
        // `MilvusServiceClient::new(Endpoint::from_static(..).connect().await?)`.
        .build_transport(false)
        // Methods the server does not override answer `Unimplemented`, so the
        // proxy can grow method by method.
        .generate_default_stubs(true)
        .compile_fds(protox::compile(PROTOS, ["proto"])?)?;

    // The internal role-to-role service: its own generator settings (no Milvus quirks).
    const INTERNAL: &str = "proto/internal.proto";
    println!("cargo:rerun-if-changed={INTERNAL}");
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .build_transport(false)
        // Bodies can be tens of MiB (vectors): `bytes::Bytes` avoids copying them.
        .bytes(".ferrovus.internal.Frame.body")
        .compile_fds(protox::compile([INTERNAL], ["proto"])?)?;
    Ok(())
}
