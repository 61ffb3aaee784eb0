//! The processors that ship with trailhead, and where their plugin files are found.

use std::path::PathBuf;

/// Processor types whose plugins ship with trailhead (found without a `plugin:` path).
pub const BUILT_IN: &[&str] = &["k8sattributes", "filter"];

/// Where built-in plugins are looked for, first match wins: `$TRAILHEAD_PLUGIN_DIR`, then
/// `plugins/` beside the binary (the container image), then `../plugins/` beside it (a
/// build tree: `target/release/trailhead` finds `target/plugins/`).
pub fn built_in_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("TRAILHEAD_PLUGIN_DIR")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    if let Some(bin) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(PathBuf::from))
    {
        dirs.push(bin.join("plugins"));
        if let Some(up) = bin.parent() {
            dirs.push(up.join("plugins"));
        }
    }
    dirs
}

/// The file of built-in plugin `kind`.
pub fn find_built_in(kind: &str) -> Result<PathBuf, String> {
    let dirs = built_in_dirs();
    dirs.iter()
        .map(|d| d.join(format!("{kind}.wasm")))
        .find(|f| f.is_file())
        .ok_or_else(|| {
            let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            format!(
                "the built-in `{kind}` plugin is not installed: no {kind}.wasm in {} (set TRAILHEAD_PLUGIN_DIR, or give a `plugin:` path)",
                looked.join(", ")
            )
        })
}
