//! The components `make plugins` builds into target/plugins/ (or `TRAILHEAD_PLUGIN_DIR`, when
//! set: a build of one's own), for the tests that load them.

// Not every helper is used by every test module.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use trailhead::processors::wasm::{Limits, LoadError, Plugin, Runtime};

/// A built component's path; fails the test, naming what to run, when it is missing.
pub fn plugin_path(name: &str) -> PathBuf {
    let dir = std::env::var_os("TRAILHEAD_PLUGIN_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/plugins"),
        PathBuf::from,
    );
    let path = dir.join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `make plugins`",
        path.display()
    );
    path
}

/// Loads a built component as processor `name`, with a small memory cap and `timeout`.
pub fn load_with(
    runtime: &Arc<Runtime>,
    name: &str,
    config: &str,
    timeout: Duration,
) -> Result<Plugin, LoadError> {
    let limits = Limits {
        memory_bytes: 16 << 20,
        timeout,
    };
    runtime.load(name, &plugin_path(name), None, config, limits)
}
