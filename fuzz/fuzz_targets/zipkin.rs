//! `cargo fuzz` target: see `trailhead::fuzzing::zipkin` for what it exercises.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| trailhead::fuzzing::zipkin(data));
