//! The collector's `headers_setter` extension (contrib): a client authenticator that sets
//! headers on every request an exporter sends, each with an action (`insert`, `update`,
//! `upsert` (the default, also for an action it does not know, with a warning), `delete`) and
//! a value from `value`, `value_file`, or the request's context (`from_context`: client
//! metadata; `from_attribute`: what the server authenticator learnt).
//!
//! trailhead keeps no per-request client metadata through its pipelines, so a context source
//! always yields its `default_value` (empty when none). That is what the collector sends only
//! where it has dropped the context too: behind a batch processor (without `metadata_keys`,
//! which trailhead refuses). The config check (`components::validate`) therefore accepts a
//! context source only for exporters whose every pipeline has a batch processor, and refuses
//! it elsewhere at its line, rather than send the default where the collector would send the
//! client's value.

use super::{ClientHeaders, HeaderAction, HeaderOp};
use crate::secrets::Secret;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// `extensions: headers_setter/NAME:`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeadersSetterConfig {
    /// The headers to set, in order.
    pub headers: Vec<HeaderConfig>,
    /// Another authenticator to chain after this one: not supported yet, refused when set.
    pub additional_auth: Option<String>,
}

/// One header: `key`, an `action`, and one value source (none for `delete`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeaderConfig {
    /// The header name.
    pub key: Option<String>,
    /// `insert`, `update`, `upsert` or `delete`; anything else (or nothing) is `upsert`.
    pub action: Option<String>,
    /// A fixed value.
    pub value: Option<String>,
    /// A file holding the value (trimmed), re-read when it changes.
    pub value_file: Option<PathBuf>,
    /// A client-metadata key of the request: trailhead has none, so `default_value` is sent.
    pub from_context: Option<String>,
    /// An attribute of the request's authentication: as `from_context`, `default_value`.
    pub from_attribute: Option<String>,
    /// The value when the request's context has none.
    pub default_value: Option<Secret>,
}

impl HeaderConfig {
    /// The action the collector takes: a known one, else `upsert` (it warns too).
    pub fn action(&self) -> HeaderAction {
        match self.action.as_deref() {
            Some("insert") => HeaderAction::Insert,
            Some("update") => HeaderAction::Update,
            Some("delete") => HeaderAction::Delete,
            _ => HeaderAction::Upsert,
        }
    }

    /// The context source it reads, as (key it is written under, the source's key).
    pub fn context_source(&self) -> Option<(&'static str, &str)> {
        match (&self.from_context, &self.from_attribute) {
            (Some(key), _) => Some(("from_context", key)),
            (None, Some(key)) => Some(("from_attribute", key)),
            (None, None) => None,
        }
    }
}

impl HeadersSetterConfig {
    /// The collector's `Validate`, and what trailhead cannot do yet.
    pub fn validate(&self) -> Result<(), String> {
        if self.additional_auth.is_some() {
            return Err(
                "additional_auth: chaining another authenticator is not supported by \
                        trailhead yet; set its headers here, or use that authenticator alone"
                    .into(),
            );
        }
        if self.headers.is_empty() {
            return Err("missing headers configuration".into());
        }
        for (at, header) in self.headers.iter().enumerate() {
            if header.key.as_deref().is_none_or(str::is_empty) {
                return Err(format!("headers[{at}]: missing header name"));
            }
            if header.action() == HeaderAction::Delete {
                continue;
            }
            let sources = [
                header.value.is_some(),
                header.value_file.is_some(),
                header.from_context.is_some(),
                header.from_attribute.is_some(),
            ];
            match sources.iter().filter(|s| **s).count() {
                0 => {
                    return Err(format!(
                        "headers[{at}]: missing header source, must be 'from_context', \
                         'from_attribute' or 'value'"
                    ));
                }
                1 => {}
                _ => {
                    return Err(format!(
                        "headers[{at}]: invalid header source, must either 'from_context', \
                         'from_attribute' or 'value'"
                    ));
                }
            }
            if header
                .action
                .as_deref()
                .is_some_and(|a| !["insert", "update", "upsert", "delete"].contains(&a))
                || header.action.is_none()
            {
                tracing::warn!(
                    key = header.key.as_deref().unwrap_or_default(),
                    "headers_setter: no known action given, using 'upsert', as the collector does"
                );
            }
        }
        Ok(())
    }

    /// The same settings with `value_file`s resolved by `resolve`.
    pub fn resolved(&self, resolve: &dyn Fn(&Path) -> PathBuf) -> Self {
        let mut resolved = self.clone();
        for header in &mut resolved.headers {
            header.value_file = header.value_file.as_deref().map(resolve);
        }
        resolved
    }

    /// The `value_file`s, to watch.
    pub fn files(&self) -> Vec<PathBuf> {
        self.headers
            .iter()
            .filter_map(|h| h.value_file.clone())
            .collect()
    }

    /// Reads the value files (resolved) now: the headers every request gets.
    pub fn load(&self) -> Result<ClientHeaders, String> {
        let mut ops = Vec::new();
        for header in &self.headers {
            let value = match (&header.value, &header.value_file) {
                (Some(value), _) => value.clone(),
                (None, Some(file)) => std::fs::read_to_string(file)
                    .map(|s| s.trim().to_string())
                    .map_err(|e| format!("cannot read value_file {}: {e}", file.display()))?,
                // A context source: trailhead's requests carry no context, so the default.
                (None, None) => header
                    .default_value
                    .as_ref()
                    .map(|d| d.0.clone())
                    .unwrap_or_default(),
            };
            ops.push(HeaderOp {
                name: header.key.clone().unwrap_or_default().to_ascii_lowercase(),
                action: header.action(),
                value: Secret(value),
            });
        }
        // Not credentials: the collector sends them over plain text too.
        Ok(ClientHeaders {
            ops,
            grpc_needs_tls: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> HeadersSetterConfig {
        crate::config::tree::from_str(text).unwrap()
    }

    #[test]
    fn the_collector_checks() {
        let problem = |text: &str| config(text).validate().unwrap_err();
        assert!(problem("headers: []").contains("missing headers"));
        assert!(problem("headers: [{value: v}]").contains("missing header name"));
        assert!(problem("headers: [{key: k}]").contains("missing header source"));
        assert!(problem("headers: [{key: k, value: v, from_context: c}]").contains("invalid"));
        assert!(problem("{headers: [{key: k, value: v}], additional_auth: x}").contains("chain"));
        config("headers: [{key: k, action: delete}]")
            .validate()
            .unwrap();
    }

    #[test]
    fn values_defaults_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tenant");
        std::fs::write(&file, "from-file\n").unwrap();
        let text = format!(
            "headers: [{{key: X-Static, value: v}}, {{key: X-File, value_file: {}}}, \
             {{key: X-Tenant, from_context: tenant, default_value: anonymous}}, \
             {{key: X-None, from_attribute: sub}}]",
            file.display()
        );
        let settings = config(&text);
        settings.validate().unwrap();
        let ops = settings.load().unwrap().ops;
        let pairs: Vec<(&str, &str)> = ops
            .iter()
            .map(|o| (o.name.as_str(), o.value.0.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("x-static", "v"),
                ("x-file", "from-file"),
                ("x-tenant", "anonymous"),
                ("x-none", "")
            ]
        );
        assert_eq!(settings.files(), [file]);
    }
}
