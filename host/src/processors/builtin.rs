//! The processors that ship with trailhead, and where their plugin files are found.

use super::resourcedetection;
use std::path::PathBuf;

/// Processor types whose plugins ship with trailhead (found without a `plugin:` path).
pub const BUILT_IN: &[&str] = &[
    "k8sattributes",
    "filter",
    "attributes",
    "resource",
    "probabilistic_sampler",
    "redaction",
    "transform",
];

/// The collector's newer names for built-in processors (`alias`, `built-in`): an entry of the
/// alias's type is that built-in in every respect (its plugin file, the Kubernetes cache's
/// settings), because [`canonical`] resolves it when the config is read.
pub const ALIASES: &[(&str, &str)] = &[
    ("k8s_attributes", "k8sattributes"),
    (resourcedetection::ALIAS, resourcedetection::KIND),
];

/// Processor types the host turns into a built-in plugin's settings when it loads them:
/// `resourcedetection` detects, then the `resource` plugin applies what it found.
pub const TRANSLATED: &[&str] = &[resourcedetection::KIND];

/// The processor type `kind` stands for: the built-in an alias names, else `kind` itself.
pub fn canonical(kind: &str) -> &str {
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == kind)
        .map_or(kind, |(_, name)| name)
}

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

/// The file name of built-in plugin `kind`: crates are named with dashes and `make plugins`
/// writes `probabilistic-sampler.wasm`, while the collector's type is `probabilistic_sampler`.
pub fn file_name(kind: &str) -> String {
    format!("{}.wasm", kind.replace('_', "-"))
}

/// The file of built-in plugin `kind`.
pub fn find_built_in(kind: &str) -> Result<PathBuf, String> {
    find_in(&built_in_dirs(), kind)
}

/// The file of built-in plugin `kind` in the first of `dirs` that has it.
fn find_in(dirs: &[PathBuf], kind: &str) -> Result<PathBuf, String> {
    let file = file_name(kind);
    dirs.iter()
        .map(|d| d.join(&file))
        .find(|f| f.is_file())
        .ok_or_else(|| {
            let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            format!(
                "the built-in `{kind}` plugin is not installed: no {file} in {} (set TRAILHEAD_PLUGIN_DIR, or give a `plugin:` path)",
                looked.join(", ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every alias names a built-in, and resolves to it; other types are left as they are.
    #[test]
    fn aliases_resolve_to_built_ins() {
        for (alias, name) in ALIASES {
            let known = BUILT_IN.contains(name) || TRANSLATED.contains(name);
            assert!(known, "{alias} → {name}");
            assert!(!BUILT_IN.contains(alias), "{alias}");
        }
        assert_eq!(canonical("k8s_attributes"), "k8sattributes");
        assert_eq!(canonical("k8sattributes"), "k8sattributes");
        assert_eq!(canonical("transformx"), "transformx");
        assert_eq!(canonical("resource_detection"), "resourcedetection");
    }

    // The image ships every built-in: deploy/Dockerfile's list names each one's file.
    #[test]
    fn the_image_ships_every_built_in() {
        let dockerfile = include_str!("../../../deploy/Dockerfile");
        let listed = dockerfile
            .lines()
            .find_map(|l| l.strip_prefix("ARG BUILT_IN=\""))
            .and_then(|l| l.strip_suffix('"'))
            .expect("deploy/Dockerfile has ARG BUILT_IN=\"…\"");
        let listed: Vec<&str> = listed.split_whitespace().collect();
        for kind in BUILT_IN {
            let stem = file_name(kind).trim_end_matches(".wasm").to_string();
            assert!(
                listed.contains(&stem.as_str()),
                "{kind} is not in the image: {listed:?}"
            );
        }
    }

    // A type with underscores is found under the file name with dashes that `make plugins`
    // writes; other types keep their name.
    #[test]
    fn file_names_use_dashes() {
        assert_eq!(
            file_name("probabilistic_sampler"),
            "probabilistic-sampler.wasm"
        );
        assert_eq!(file_name("redaction"), "redaction.wasm");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("probabilistic-sampler.wasm"), b"").unwrap();
        let dirs = [dir.path().to_path_buf()];
        let found = find_in(&dirs, "probabilistic_sampler").unwrap();
        assert_eq!(found, dir.path().join("probabilistic-sampler.wasm"));
        let missing = find_in(&dirs, "redaction").unwrap_err();
        assert!(missing.contains("no redaction.wasm in"), "{missing}");
    }
}
