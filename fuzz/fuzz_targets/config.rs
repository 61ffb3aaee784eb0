//! `cargo fuzz` target: see `trailhead::fuzzing::config` for what it exercises.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| trailhead::fuzzing::config(data));
