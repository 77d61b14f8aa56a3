//! Generates the server side of EventStoreDB's gRPC `Streams` service from the
//! `.proto` files the `kurrentdb` client crate ships (copied into `proto/`),
//! with a vendored `protoc`, so building needs no system install.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    let include = protoc_bin_vendored::include_path()?;
    println!("cargo:rerun-if-changed=proto");
    tonic_build::configure()
        .build_client(false)
        .build_server(true)
        .compile_protos_with_config(config, &["proto/streams.proto"], &["proto".into(), include])?;
    Ok(())
}
