//! Generates the tonic/prost code for `latchkey.v1` with protox, so no system
//! `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "latchkey/v1/device.proto",
        "latchkey/v1/admin.proto",
        "latchkey/v1/agent.proto",
    ];
    let descriptors = protox::compile(files, ["."])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    println!("cargo:rerun-if-changed=latchkey");
    Ok(())
}
