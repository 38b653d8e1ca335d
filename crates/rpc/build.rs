//! Compiles `proto/kvpb.proto` and `proto/node.proto` with tonic-prost-build.
//!
//! protoc comes from `protoc-bin-vendored` unless `PROTOC` is already set; it
//! is set only inside this build script's process, never globally (raft-proto
//! needs a 3.x protoc and finds its own).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/kvpb.proto");
    println!("cargo:rerun-if-changed=proto/node.proto");
    println!("cargo:rerun-if-env-changed=PROTOC");
    if std::env::var_os("PROTOC").is_none() {
        let protoc = protoc_bin_vendored::protoc_bin_path()?;
        // SAFETY: build scripts are single-threaded; nothing else reads the
        // environment concurrently.
        unsafe { std::env::set_var("PROTOC", protoc) };
    }
    tonic_prost_build::configure()
        .compile_protos(&["proto/kvpb.proto", "proto/node.proto"], &["proto"])?;
    Ok(())
}
