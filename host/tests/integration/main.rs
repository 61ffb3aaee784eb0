//! The host's integration tests, one module per area, built as one test binary: each binary
//! links the whole trailhead library, so one link instead of eight saves CI a minute.

mod config_docs;
mod fuzz_corpus;
mod layering;
mod peer_address;
mod plugin_cache;
mod plugins;
mod room_wait;
mod sources;
mod wasm_contract;
mod wasm_plugins;
mod wasm_profiles;
