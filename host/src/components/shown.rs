//! The config as an operator may see it (the console's config view): every value as written,
//! after `${env:…}` expansion, with secrets replaced by `[REDACTED]` as the collector prints its
//! `configopaque` values; and what changed between two configs, path by path, redacted the same
//! way.
//!
//! A secret is found by its key, since trailhead's config has no type that marks one: passwords,
//! tokens, client secrets, API keys and private keys (`key_pem`), every value under `headers`
//! (an `Authorization` header is a credential), and the password in a URL's user info.

use serde_json::Value;

/// What a secret is shown as.
pub const REDACTED: &str = "[REDACTED]";

/// At most this many changes are listed for one reload; the rest are counted.
pub const MAX_CHANGES: usize = 200;

/// `value` with every secret in it replaced by [`REDACTED`].
pub fn redacted(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, v)| (key.clone(), redacted_under(key, v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redacted).collect()),
        Value::String(text) => Value::String(without_url_password(text)),
        other => other.clone(),
    }
}

/// The value of `key`, redacted: wholly if the key names a secret.
fn redacted_under(key: &str, value: &Value) -> Value {
    if key.eq_ignore_ascii_case("headers") {
        return redacted_headers(value);
    }
    if is_secret(key) && !value.is_null() {
        return Value::String(REDACTED.into());
    }
    redacted(value)
}

/// Headers as a map (`otlp`'s `headers: {authorization: …}`) lose every value; as a list of
/// entries (`headers_setter`'s `{key, value, from_context}`) each entry's `value` and
/// `default_value`.
fn redacted_headers(value: &Value) -> Value {
    let secret = || Value::String(REDACTED.into());
    match value {
        Value::Object(map) => Value::Object(map.keys().map(|k| (k.clone(), secret())).collect()),
        Value::Array(entries) => Value::Array(
            entries
                .iter()
                .map(|entry| match entry {
                    Value::Object(fields) => Value::Object(
                        fields
                            .iter()
                            .map(|(k, v)| match k.as_str() {
                                "value" | "default_value" => (k.clone(), secret()),
                                _ => (k.clone(), redacted(v)),
                            })
                            .collect(),
                    ),
                    _ => secret(),
                })
                .collect(),
        ),
        Value::Null => Value::Null,
        _ => secret(),
    }
}

/// Keys whose values are credentials wherever they appear.
fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    const EXACT: [&str; 7] = [
        "key_pem",
        "api_key",
        "apikey",
        "access_key",
        "secret_key",
        "private_key",
        "authorization",
    ];
    const ENDINGS: [&str; 3] = ["password", "secret", "token"];
    EXACT.contains(&key.as_str()) || ENDINGS.iter().any(|end| key.ends_with(end))
}

/// `scheme://user:password@host…` with the password redacted; any other text as it is.
fn without_url_password(text: &str) -> String {
    let Some(scheme_end) = text.find("://") else {
        return text.to_string();
    };
    let rest = &text[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return text.to_string();
    };
    let Some(colon) = rest[..at].find(':') else {
        return text.to_string();
    };
    let start = scheme_end + 3 + colon + 1;
    format!(
        "{}{REDACTED}{}",
        &text[..start],
        &text[scheme_end + 3 + at..]
    )
}

/// One value that differs between two configs, at its dotted path (`processors.attributes/x
/// .actions[0].value`). `None` on a side where the path does not exist.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ValueChange {
    pub path: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// What differs between `old` and `new`, deepest first where both are maps (or lists of the
/// same length), redacted. A secret that changed is listed with both sides redacted.
pub fn changes(old: &Value, new: &Value) -> Vec<ValueChange> {
    let mut found = Vec::new();
    walk(
        "",
        Some(&redacted(old)),
        Some(&redacted(new)),
        Some(old),
        Some(new),
        &mut found,
    );
    found
}

/// Compares the raw values (so a changed secret is seen) and reports the redacted ones.
fn walk(
    path: &str,
    shown_old: Option<&Value>,
    shown_new: Option<&Value>,
    old: Option<&Value>,
    new: Option<&Value>,
    found: &mut Vec<ValueChange>,
) {
    if old == new || found.len() >= MAX_CHANGES {
        return;
    }
    let join = |key: &str| match path {
        "" => key.to_string(),
        _ => format!("{path}.{key}"),
    };
    match (old, new, shown_old, shown_new) {
        (Some(Value::Object(a)), Some(Value::Object(b)), Some(sa), Some(sb)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let (ka, kb) = (a.get(key.as_str()), b.get(key.as_str()));
                let (sa, sb) = (sa.get(key.as_str()), sb.get(key.as_str()));
                walk(&join(key), sa, sb, ka, kb, found);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b)), Some(sa), Some(sb))
            if a.len() == b.len() =>
        {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                let (sx, sy) = (sa.get(i), sb.get(i));
                walk(&format!("{path}[{i}]"), sx, sy, Some(x), Some(y), found);
            }
        }
        _ => found.push(ValueChange {
            path: path.to_string(),
            before: shown_old.cloned(),
            after: shown_new.cloned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn credentials_are_redacted_and_the_rest_is_kept() {
        let config = json!({
            "exporters": {"otlp": {
                "endpoint": "https://alloy:4317",
                "headers": {"authorization": "Bearer s3cret", "x-tenant": "t1"},
                "tls": {"key_pem": "-----BEGIN KEY-----", "cert_file": "/certs/tls.crt"},
            }},
            "extensions": {
                "bearertokenauth": {"token": "abc", "filename": "/var/run/token"},
                "basicauth/client": {"client_auth": {"username": "u", "password": "p"}},
                "headers_setter": {"headers": [{"key": "X-Scope-OrgID", "from_context": "tenant", "value": "v"}]},
                "oauth2client": {"client_id": "id", "client_secret": "cs"},
            },
            "processors": {"attributes": {"actions": [{"key": "token", "value": "kept", "action": "insert"}]}},
            "receivers": {"prometheus": {"url": "http://user:pw@host:9090/metrics", "plain": "a://b@c"}},
        });
        let shown = redacted(&config);
        let text = shown.to_string();
        for secret in [
            "s3cret",
            "t1",
            "BEGIN KEY",
            "\"abc\"",
            "\"p\"",
            "\"v\"",
            "\"cs\"",
            ":pw@",
        ] {
            assert!(!text.contains(secret), "{secret} shown in {text}");
        }
        assert_eq!(
            shown["exporters"]["otlp"]["headers"]["authorization"],
            REDACTED
        );
        assert_eq!(
            shown["exporters"]["otlp"]["tls"]["cert_file"],
            "/certs/tls.crt"
        );
        assert_eq!(
            shown["extensions"]["bearertokenauth"]["filename"],
            "/var/run/token"
        );
        let setter = &shown["extensions"]["headers_setter"]["headers"][0];
        assert_eq!(setter["key"], "X-Scope-OrgID");
        assert_eq!(setter["from_context"], "tenant");
        // `key` and `value` of an attributes action are data, not credentials.
        assert_eq!(
            shown["processors"]["attributes"]["actions"][0]["value"],
            "kept"
        );
        let url = &shown["receivers"]["prometheus"]["url"];
        assert_eq!(url, "http://user:[REDACTED]@host:9090/metrics");
        assert_eq!(shown["receivers"]["prometheus"]["plain"], "a://b@c");
    }

    #[test]
    fn changes_name_each_path_and_hide_changed_secrets() {
        let old = json!({"processors": {"attributes/x": {"actions": [{"key": "a", "value": "1"}]}},
                         "exporters": {"otlp": {"headers": {"authorization": "old"}}},
                         "service": {"pipelines": {"traces": {"processors": ["attributes/x"]}}}});
        let new = json!({"processors": {"attributes/x": {"actions": [{"key": "a", "value": "2"}]},
                                        "filter": {"error_mode": "ignore"}},
                         "exporters": {"otlp": {"headers": {"authorization": "new"}}},
                         "service": {"pipelines": {"traces": {"processors": ["attributes/x", "filter"]}}}});
        let found = changes(&old, &new);
        let paths: Vec<&str> = found.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "exporters.otlp.headers.authorization",
                "processors.attributes/x.actions[0].value",
                "processors.filter",
                "service.pipelines.traces.processors",
            ]
        );
        assert_eq!(found[0].before, Some(json!(REDACTED)));
        assert_eq!(found[0].after, Some(json!(REDACTED)));
        assert_eq!(
            (found[1].before.clone(), found[1].after.clone()),
            (Some(json!("1")), Some(json!("2")))
        );
        assert_eq!(found[2].before, None);
        assert!(changes(&old, &old).is_empty());
    }
}
