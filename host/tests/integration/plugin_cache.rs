//! The disk cache of compiled components: a second runtime (a restart) reads what the first
//! compiled; an entry that was corrupted, or that another wasmtime wrote, is rebuilt and never
//! run. Needs `make plugins` (the components in target/plugins/).

#![allow(clippy::unwrap_used)] // a test: a failed step should fail it loudly

use std::path::{Path, PathBuf};
use std::sync::Arc;
use trailhead::processors::wasm::{Compiled, Limits, Plugin, Runtime};

use crate::plugins;
use plugins::plugin_path;

/// A fresh runtime (as after a restart) on the cache at `dir`, loading the `faults` plugin.
fn start(dir: &Path) -> Plugin {
    let runtime = Runtime::with_cache(Arc::default(), Some(dir)).unwrap();
    let config = r#"{"fault":"none"}"#;
    runtime
        .load(
            "faults",
            &plugin_path("faults"),
            None,
            config,
            Limits::default(),
        )
        .unwrap()
}

fn the_entry(dir: &Path) -> PathBuf {
    let entries: Vec<PathBuf> = std::fs::read_dir(dir.join("trailhead"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries[0].clone()
}

#[test]
fn a_restart_reads_compiled_code_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(start(dir.path()).compiled, Compiled::Fresh);
    let entry = the_entry(dir.path());
    let name = entry.file_name().unwrap().to_string_lossy().to_string();
    let plugin = start(dir.path());
    assert_eq!(plugin.compiled, Compiled::Disk);
    assert!(
        name.starts_with(&plugin.sha256),
        "{name} is named by the component's sha256"
    );
}

#[test]
fn a_corrupt_entry_is_rebuilt_not_run() {
    let dir = tempfile::tempdir().unwrap();
    start(dir.path());
    let entry = the_entry(dir.path());
    let mut bytes = std::fs::read(&entry).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&entry, &bytes).unwrap();
    assert_eq!(start(dir.path()).compiled, Compiled::Fresh);
    assert_ne!(
        std::fs::read(&entry).unwrap(),
        bytes,
        "the entry was written again"
    );
    assert_eq!(start(dir.path()).compiled, Compiled::Disk);
}

// A file with a sound digest whose artifact wasmtime refuses (another version's, or not an
// artifact at all): wasmtime's own header check catches it, and it is rebuilt.
#[test]
fn a_foreign_artifact_is_rebuilt() {
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    start(dir.path());
    let entry = the_entry(dir.path());
    let foreign = b"\x7fELF not wasmtime's artifact";
    let name = entry.file_stem().unwrap().to_string_lossy().to_string();
    let mut bytes = b"trailhead-cwasm2".to_vec();
    bytes.extend_from_slice(&sha2::Sha256::digest([name.as_bytes(), foreign].concat()));
    bytes.extend_from_slice(foreign);
    std::fs::write(&entry, &bytes).unwrap();
    assert_eq!(start(dir.path()).compiled, Compiled::Fresh);
    assert_eq!(start(dir.path()).compiled, Compiled::Disk);
}

// `trailhead plugin compile` fills the cache ahead of time, and says which contract each
// component speaks; the first start then reads it.
#[test]
fn plugin_compile_fills_the_cache_ahead_of_time() {
    let dir = tempfile::tempdir().unwrap();
    let files = [plugin_path("faults"), plugin_path("contract-v2")];
    let report = trailhead::processors::offline::compile(&files, dir.path()).unwrap();
    assert!(report.contains("mathtrail:trailhead@0.1.0"), "{report}");
    assert!(report.contains("mathtrail:trailhead@0.2.0"), "{report}");
    assert_eq!(start(dir.path()).compiled, Compiled::Disk);
    let wrong =
        trailhead::processors::offline::compile(&[plugin_path("misfit-wrong-wit")], dir.path());
    assert!(wrong.unwrap_err().contains("does not implement"));
}
