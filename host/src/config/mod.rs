//! What every component's configuration shares, in the OpenTelemetry Collector's shape:
//! component ids (`type[/name]`), sections keyed by them, values (durations, sizes, sections
//! that may be empty), `${env:…}` and `${file:…}` expansion, and diagnostics with locations.
//!
//! A file is read once into a tree of located nodes (`tree`), and a typed document is
//! deserialized from that tree, so every error keeps its key path, line and column. Positions
//! are in the file as written: expansion remembers what it replaced. Which component types
//! exist, and the document that wires them, belong to `crate::components`: this module names
//! no component.

pub mod expand;
mod section;
pub mod tree;
pub mod values;

pub use section::{ComponentId, Components, Typed, or_default};

use serde::de::DeserializeOwned;
use std::fmt;

/// Where a problem is reported: the key path, a value under it, the component and the message.
pub type Report<'a> = &'a mut dyn FnMut(&[&str], Option<&str>, String, String);

/// One problem in a config file, located as precisely as the problem allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    /// 1-based line and column, when known.
    pub position: Option<(usize, usize)>,
    /// The component the problem belongs to, if any.
    pub component: Option<String>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(component) = &self.component {
            write!(f, ": {component}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in a config; loading fails if there is at least one.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError(pub Vec<Diagnostic>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

/// A config document as read: the typed document, the tree it was read from (which locates
/// later problems), and the environment variables it named that were unset.
pub struct Read<T> {
    pub document: T,
    pub tree: tree::Located,
    /// Expanded to empty, as the collector does; the caller warns once its logs are set up
    /// (the first config is read before there are logs to write to).
    pub unset_env: Vec<String>,
}

/// Expands, reads and deserializes config `text`, named `file` in errors. An error is where it
/// is in the file as written and what it says, led by the key path to it
/// (`receivers.otlp.protocols.grpc: unknown field …`).
pub fn read<T: DeserializeOwned>(text: &str, file: &str) -> Result<Read<T>, ConfigError> {
    let expansion = expand::expand_env(text, |name| std::env::var(name).ok());
    let failed = |position, message| {
        ConfigError(vec![Diagnostic {
            file: file.to_string(),
            position,
            component: None,
            message,
        }])
    };
    if !expansion.errors.is_empty() {
        let located = |(offset, message): &(usize, String)| Diagnostic {
            file: file.to_string(),
            position: Some(line_and_column(text, *offset)),
            component: None,
            message: message.clone(),
        };
        return Err(ConfigError(expansion.errors.iter().map(located).collect()));
    }
    let tree = tree::Located::parse(&expansion, text).map_err(|(at, e)| failed(at, e))?;
    let document = T::deserialize(&tree).map_err(|e| failed(e.position(), e.to_string()))?;
    Ok(Read {
        document,
        tree,
        unset_env: expansion.unset,
    })
}

/// The 1-based line and column (in characters) of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line_start = before.rfind('\n').map_or(0, |n| n + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

#[cfg(test)]
mod tests {
    // A reference that cannot expand is an error at the reference, in the file as written.
    #[test]
    fn expansion_errors_are_located() {
        let text = "a: ${env:X:-1}\nb: \"x ${file:/nonexistent/trailhead}\"\n";
        let error = super::read::<serde_json::Value>(text, "c.yaml")
            .err()
            .unwrap();
        let diagnostic = &error.0[0];
        assert_eq!(diagnostic.position, Some((2, 7)));
        assert!(
            diagnostic
                .message
                .contains("cannot read the file /nonexistent/trailhead")
        );
        assert!(diagnostic.to_string().starts_with("c.yaml:2:7: `${file:"));
    }
}
