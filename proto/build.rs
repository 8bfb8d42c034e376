//! Generates the `dbtops.v1` types with prost and the `Ingest` gRPC service with tonic,
//! parsing the .proto files with protox so that no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["dbtops/v1/events.proto"];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["."])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .build_transport(true)
        .compile_fds(descriptors)?;
    Ok(())
}
