//! `trailhead plugin check` and `trailhead plugin test`: a plugin outside any pipeline, so an
//! author can see what it is and what it does to a batch before deploying it.

use super::{split_settings, wasm};
use crate::pdata::{RequestContext, Signal, json};
use std::path::Path;

/// Loads a plugin with a processor entry's settings (YAML or JSON text; empty for none).
fn load(file: &Path, settings: &str) -> Result<wasm::Plugin, String> {
    let settings: serde_json::Value = if settings.trim().is_empty() {
        serde_json::Value::Object(Default::default())
    } else {
        crate::config::tree::from_str(settings).map_err(|e| format!("plugin config: {e}"))?
    };
    let (host, plugin_config) =
        split_settings(&settings).map_err(|e| format!("plugin config: {e}"))?;
    let runtime =
        wasm::Runtime::new().map_err(|e| format!("cannot start the Wasm runtime: {e:#}"))?;
    let id = file
        .file_stem()
        .map_or("plugin".into(), |s| s.to_string_lossy().to_string());
    runtime
        .load(
            &id,
            file,
            host.sha256.as_deref(),
            &plugin_config,
            host.limits.to_limits(),
        )
        .map_err(|e| e.to_string())
}

/// What `plugin check` prints: the plugin's own description, after it passed every load step.
pub fn check(file: &Path, settings: &str) -> Result<String, String> {
    let plugin = load(file, settings)?;
    let signals: Vec<&str> = Signal::ALL
        .into_iter()
        .filter(|s| plugin.handles(*s))
        .map(Signal::as_str)
        .collect();
    Ok(format!(
        "{}: ok\n  name: {}\n  version: {}\n  signals: {}\n  contract: mathtrail:trailhead@{}\n  sha256: {}\n",
        file.display(),
        plugin.info.name,
        plugin.info.version,
        signals.join(", "),
        plugin.info.contract,
        plugin.sha256
    ))
}

/// `plugin compile`: each component compiled and checked into the disk cache at `cache`, ahead
/// of time (in an image build, say), so trailhead's first start serves without compiling.
pub fn compile(files: &[std::path::PathBuf], cache: &Path) -> Result<String, String> {
    // Said here, before any compiling: the runtime would only log it and go without a cache.
    wasm::cache::private_folder(cache)?;
    let runtime = wasm::Runtime::with_cache(Default::default(), Some(cache))
        .map_err(|e| format!("cannot start the Wasm runtime: {e:#}"))?;
    let mut report = String::new();
    for file in files {
        let (entry, contract) = runtime.compile_ahead(file).map_err(|e| e.to_string())?;
        let entry = entry.ok_or_else(|| format!("{}: not usable as a cache", cache.display()))?;
        report.push_str(&format!(
            "{}: mathtrail:trailhead@{contract} -> {}\n",
            file.display(),
            entry.display()
        ));
    }
    Ok(report)
}

/// What `plugin test` prints: the batch after the plugin, as OTLP/JSON.
pub fn test(file: &Path, settings: &str, input: &str) -> Result<String, String> {
    let value: serde_json::Value =
        serde_json::from_str(input).map_err(|e| format!("input: {e}"))?;
    let signal = [
        ("resourceSpans", Signal::Traces),
        ("resourceMetrics", Signal::Metrics),
        ("resourceLogs", Signal::Logs),
    ]
    .into_iter()
    .find(|(key, _)| value.get(key).is_some())
    .map(|(_, signal)| signal)
    .ok_or("input: not an OTLP/JSON request (no resourceSpans, resourceMetrics or resourceLogs)")?;
    let context = RequestContext::internal("plugin-test");
    let batch = json::batch_from_json(signal, input.as_bytes(), context)
        .map_err(|e| format!("input: {e}"))?;
    let plugin = load(file, settings)?;
    if !plugin.handles(signal) {
        return Err(format!(
            "the plugin does not handle {signal}; it would pass the batch through unchanged"
        ));
    }
    let output = plugin.call(&batch).map_err(|f| {
        format!(
            "the plugin failed ({}): {}\n{}",
            f.kind.as_str(),
            f.message,
            f.output
        )
    })?;
    let rendered = json::to_json(signal, &output)?;
    serde_json::to_string_pretty(&rendered).map_err(|e| e.to_string())
}

/// What `trailhead plugin new` writes out, embedded so an installed binary needs no checkout:
/// the template crate, the Rust SDK beside it, and the WIT the SDK is generated from.
static TEMPLATE: include_dir::Dir =
    include_dir::include_dir!("$CARGO_MANIFEST_DIR/../plugins/template");
static SDK: include_dir::Dir = include_dir::include_dir!("$CARGO_MANIFEST_DIR/../plugins/sdk");
static WIT: include_dir::Dir = include_dir::include_dir!("$CARGO_MANIFEST_DIR/../wit/0.2.1");

/// Crate names `plugin new` refuses: Rust's own crates, cargo's reserved names, and the SDK's.
const RESERVED: [&str; 7] = [
    "std",
    "core",
    "alloc",
    "test",
    "proc-macro",
    "trailhead-plugin",
    SDK_FOLDER,
];

/// The folder, inside a new plugin crate, that holds its copy of the SDK.
const SDK_FOLDER: &str = "trailhead-sdk";

/// Every file of an embedded folder, with its path inside it. Build leftovers (a lock file or
/// a `target/` from building the template in the repo) are not part of it.
fn files<'a>(dir: &'a include_dir::Dir<'a>) -> Vec<(&'a Path, &'a [u8])> {
    let mut out = Vec::new();
    for entry in dir.entries() {
        let path = entry.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if matches!(name, "target" | "Cargo.lock" | "wit") {
            continue;
        }
        match entry {
            include_dir::DirEntry::Dir(d) => out.extend(files(d)),
            include_dir::DirEntry::File(f) => out.push((f.path(), f.contents())),
        }
    }
    out
}

fn write_file(path: &Path, contents: &[u8]) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    std::fs::write(path, contents).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes a new plugin crate named `name` into `dir`. Its SDK is the one embedded in this
/// binary, written into the crate (`trailhead-sdk/`, WIT included), unless `sdk` names a
/// checkout's SDK to depend on instead.
pub fn new_plugin(dir: &Path, name: &str, sdk: Option<&Path>) -> Result<String, String> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.starts_with(|c: char| c.is_ascii_lowercase());
    if !valid {
        return Err(format!(
            "`{name}`: a plugin name is lowercase letters, digits and dashes, starting with a letter"
        ));
    }
    // Names cargo would refuse, or that would clash with the SDK crate written beside it.
    if RESERVED.contains(&name) {
        return Err(format!(
            "`{name}`: that name is taken (by Rust or the SDK); choose another"
        ));
    }
    let root = dir.join(name);
    if root.exists() {
        return Err(format!("{} already exists", root.display()));
    }
    let sdk_path = match sdk {
        Some(sdk) => sdk
            .canonicalize()
            .map_err(|e| format!("the SDK at {}: {e}", sdk.display()))?
            .display()
            .to_string(),
        None => SDK_FOLDER.to_string(),
    };
    for (file, contents) in files(&TEMPLATE) {
        let text = String::from_utf8_lossy(contents)
            .replace("plugin-template", name)
            .replace("plugin_template", &name.replace('-', "_"))
            .replace("path = \"../sdk\"", &format!("path = {sdk_path:?}"));
        write_file(&root.join(file), text.as_bytes())?;
    }
    if sdk.is_none() {
        let sdk_root = root.join(SDK_FOLDER);
        for (file, contents) in files(&SDK) {
            write_file(&sdk_root.join(file), contents)?;
        }
        for (file, contents) in files(&WIT) {
            write_file(&sdk_root.join("wit").join(file), contents)?;
        }
    }
    let wasm = name.replace('-', "_");
    Ok(format!(
        "created {root}\n\nnext:\n  cd {root} && cargo build --release\n  trailhead plugin check target/wasm32-wasip2/release/{wasm}.wasm",
        root = root.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_new_refuses_names_cargo_or_the_sdk_would_clash_with() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "Team",
            "9lives",
            "team_stamp",
            "",
            "std",
            "test",
            "trailhead-plugin",
            "trailhead-sdk",
        ] {
            assert!(
                new_plugin(dir.path(), name, None).is_err(),
                "{name} was accepted"
            );
        }
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing written"
        );
    }

    #[test]
    fn plugin_new_writes_the_template_the_sdk_and_the_wit() {
        let dir = tempfile::tempdir().unwrap();
        new_plugin(dir.path(), "team-stamp", None).unwrap();
        let root = dir.path().join("team-stamp");
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("name = \"team-stamp\""), "{manifest}");
        assert!(manifest.contains("path = \"trailhead-sdk\""), "{manifest}");
        for file in [
            "src/lib.rs",
            ".cargo/config.toml",
            "trailhead-sdk/Cargo.toml",
            "trailhead-sdk/src/lib.rs",
        ] {
            assert!(root.join(file).is_file(), "{file} missing");
        }
        let wit = std::fs::read_dir(root.join("trailhead-sdk/wit"))
            .unwrap()
            .count();
        assert_eq!(wit, WIT.files().count(), "every WIT file of 0.2.1");
        assert!(!root.join("Cargo.lock").exists() && !root.join("trailhead-sdk/target").exists());
    }
}
