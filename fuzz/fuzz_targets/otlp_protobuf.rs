//! `cargo fuzz` target: see `trailhead::fuzzing::otlp_protobuf` for what it exercises.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| trailhead::fuzzing::otlp_protobuf(data));
