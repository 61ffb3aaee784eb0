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
        "{}: ok\n  name: {}\n  version: {}\n  signals: {}\n  sha256: {}\n",
        file.display(),
        plugin.info.name,
        plugin.info.version,
        signals.join(", "),
        plugin.sha256
    ))
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

/// The template crate `trailhead plugin new` writes out (plugins/template in the repo).
const TEMPLATE: [(&str, &str); 3] = [
    (
        "Cargo.toml",
        include_str!("../../../plugins/template/Cargo.toml"),
    ),
    (
        ".cargo/config.toml",
        include_str!("../../../plugins/template/.cargo/config.toml"),
    ),
    (
        "src/lib.rs",
        include_str!("../../../plugins/template/src/lib.rs"),
    ),
];

/// The SDK beside this build's source tree, if it is still there.
pub fn default_sdk() -> Option<std::path::PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/sdk")
        .canonicalize()
        .ok()
}

/// Writes a new plugin crate named `name` into `dir`, depending on the SDK at `sdk`.
pub fn new_plugin(dir: &Path, name: &str, sdk: &Path) -> Result<String, String> {
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
    let root = dir.join(name);
    if root.exists() {
        return Err(format!("{} already exists", root.display()));
    }
    let sdk = sdk
        .canonicalize()
        .map_err(|e| format!("the SDK at {}: {e}", sdk.display()))?;
    for (file, text) in TEMPLATE {
        let text = text
            .replace("plugin-template", name)
            .replace("plugin_template", &name.replace('-', "_"))
            .replace(
                "path = \"../sdk\"",
                &format!("path = {:?}", sdk.display().to_string()),
            );
        let path = root.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let wasm = name.replace('-', "_");
    Ok(format!(
        "created {root}\n\nnext:\n  cd {root} && cargo build --release\n  trailhead plugin check target/wasm32-wasip2/release/{wasm}.wasm",
        root = root.display()
    ))
}
