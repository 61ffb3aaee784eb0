//! A lint: the host's modules import in one direction. Each top-level module of `host/src` has
//! a layer below, and a file may name (`crate::…`) only modules in lower layers than its own.
//! A new module must be given a layer here, so its place in the architecture is decided, not
//! drifted into. It reads the sources as text; comments are skipped.

use crate::sources;
use std::collections::BTreeSet;

use sources::sources;
use std::path::Path;

/// Lowest first: shared data and config, then what every component uses, the components,
/// the table that names them all, and the service that runs them.
const LAYERS: [&str; 13] = [
    "pdata",
    "config",
    "telemetry",
    "secrets",
    "auth",
    "kubernetes",
    "exporters",
    "pipeline",
    "processors",
    // Connectors run OTTL conditions as processors do; receivers never name one.
    "connectors",
    "receivers",
    "components",
    "service",
];

/// Files outside the layers: the crate root, the binary, and the fuzzing entry points.
const ROOTS: [&str; 3] = ["lib", "main", "fuzzing"];

/// The top-level modules `text` names after `crate::`, either `crate::a::…` or each item of
/// `crate::{a, b::c}`.
fn named_modules(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    _ if item_start && !c.is_whitespace() => {
                        found.insert(ident(&group[i..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(ident(rest));
        }
    }
    found
}

#[test]
fn modules_import_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut problems = Vec::new();
    for file in sources(&src) {
        let relative = file.strip_prefix(&src).expect("under src");
        let first = relative.components().next().expect("a path");
        let module = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if ROOTS.contains(&module.as_str()) {
            continue;
        }
        let Some(layer) = LAYERS.iter().position(|m| *m == module) else {
            problems.push(format!(
                "{}: module `{module}` has no layer",
                relative.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(&file).expect("a source file");
        for named in named_modules(&text) {
            if named == module {
                continue;
            }
            match LAYERS.iter().position(|m| *m == named) {
                Some(other) if other < layer => {}
                Some(_) => problems.push(format!(
                    "{}: `{module}` names `crate::{named}`, which is not below it",
                    relative.display()
                )),
                None => problems.push(format!(
                    "{}: names `crate::{named}`, which has no layer",
                    relative.display()
                )),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn named_modules_reads_paths_and_groups() {
    let text = "use crate::a::B;\n// crate::comment\nuse crate::{b, c::{D, E}, d::F};\nlet x = crate::e::f();";
    let found: Vec<String> = named_modules(text).into_iter().collect();
    assert_eq!(found, ["a", "b", "c", "d", "e"]);
}
