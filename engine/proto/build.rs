//! Generates the Milvus wire types and the tonic `MilvusService` server and
//! client from `proto/*.proto` (a verified subset of milvus-proto, see
//! `check_against_pymilvus.py`).  Needs `protoc` on PATH or in `$PROTOC`
//! (Debian/Ubuntu: `apt-get install protobuf-compiler`).

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
    println!("cargo:rerun-if-env-changed=PROTOC");

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
        .compile_protos(PROTOS, &["proto"])?;
    Ok(())
}
