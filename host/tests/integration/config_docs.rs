//! A lint: every field an operator can set in the config has a doc comment. It reads the host's
//! sources as text: each `pub` field of a struct that derives `Deserialize` must have a `///`
//! line above it (above its attributes). Wire models, read from senders and not from the
//! config, are left out.

use crate::sources;

use sources::sources;
use std::path::Path;

/// Files whose `Deserialize` structs are what senders send, not config.
const WIRE_MODELS: [&str; 1] = ["receivers/zipkin/model.rs"];

/// `file:line struct.field` of each undocumented config field in `text`.
fn undocumented(file: &str, text: &str) -> Vec<String> {
    let lines: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim_start().starts_with("#[cfg(test)]"))
        .collect();
    let is_attribute = |l: &str| l.trim_start().starts_with("#[");
    let mut found = Vec::new();
    let mut at = 0;
    while at < lines.len() {
        let derives =
            lines[at].trim_start().starts_with("#[derive(") && lines[at].contains("Deserialize");
        at += 1;
        if !derives {
            continue;
        }
        while at < lines.len() && is_attribute(lines[at]) {
            at += 1;
        }
        let Some(name) = lines
            .get(at)
            .and_then(|l| l.trim().strip_prefix("pub struct "))
        else {
            continue;
        };
        let Some(name) = name.strip_suffix(" {") else {
            continue; // a tuple or unit struct
        };
        at += 1;
        while at < lines.len() && !lines[at].starts_with('}') {
            let field = lines[at]
                .trim()
                .strip_prefix("pub ")
                .and_then(|f| f.split_once(':'));
            if let Some((field, _)) = field {
                let mut above = at - 1;
                while is_attribute(lines[above]) {
                    above -= 1;
                }
                if !lines[above].trim_start().starts_with("///") {
                    found.push(format!("{file}:{} {name}.{field}", at + 1));
                }
            }
            at += 1;
        }
    }
    found
}

#[test]
fn every_config_field_has_a_doc_comment() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut missing = Vec::new();
    let mut structs = 0;
    for path in sources(&root) {
        let file = path.strip_prefix(&root).unwrap().display().to_string();
        if WIRE_MODELS.contains(&file.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        structs += text.matches("Deserialize").count();
        missing.extend(undocumented(&file, &text));
    }
    assert!(
        structs > 20,
        "the scan found the config structs ({structs})"
    );
    assert!(
        missing.is_empty(),
        "config fields without a doc comment:\n{}",
        missing.join("\n")
    );
}

// The lint itself: a field without a doc line is found, through attributes, and one with is not.
#[test]
fn the_lint_finds_an_undocumented_field() {
    let text = "#[derive(Debug, Deserialize)]\n#[serde(default)]\npub struct Knobs {\n    /// Documented.\n    pub a: u32,\n    #[serde(default)]\n    pub b: u32,\n}\n";
    assert_eq!(undocumented("k.rs", text), ["k.rs:7 Knobs.b"]);
}
