//! The collector's redaction of one attribute map and one log body, on plain values: which keys
//! go, which values are masked, and the summary attributes, in the collector's order.

use crate::config::{Hash, Summary};
use hmac::{Hmac, Mac};
use pdata_text::Tree;
use regex::Regex;
use sha1::Digest;
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

/// The checked config.
pub struct Rules {
    pub allow_all_keys: bool,
    pub allowed: HashSet<String>,
    pub ignored: HashSet<String>,
    pub ignored_patterns: Vec<Regex>,
    pub blocked_values: Vec<Regex>,
    pub allowed_values: Vec<Regex>,
    pub blocked_keys: Vec<Regex>,
    pub hash: Hash,
    pub hmac_key: Vec<u8>,
    pub redact_all_types: bool,
    pub summary: Summary,
    pub mask_all: Regex,
    /// Each attribute key's [`Class`] once worked out: keys repeat on every entry, and the
    /// rules are a few set lookups and regexes each.
    pub classes: RefCell<HashMap<String, Class>>,
}

/// At most this many keys are remembered, so keys that never repeat cannot grow the cache
/// without bound; others are worked out each time.
const CLASSED_KEYS: usize = 4096;

/// What the key rules say of an attribute key, in the order the collector applies them.
#[derive(Clone, Copy)]
pub enum Class {
    Ignored,
    Redacted,
    /// Kept, its value checked; `masked` when a blocked key pattern matches it.
    Kept {
        masked: bool,
    },
}

/// The summary keys an allow list always lets through (the collector's list: not the
/// `allowed` ones, nor the body's).
pub const SUMMARY_KEYS: [&str; 5] = [
    "redaction.redacted.keys",
    "redaction.redacted.count",
    "redaction.masked.keys",
    "redaction.masked.count",
    "redaction.ignored.count",
];

/// What processing a map did: its keys per outcome.
#[derive(Default)]
struct Outcome {
    redacted: Vec<String>,
    masked: Vec<String>,
    allowed: Vec<String>,
    ignored: Vec<String>,
}

impl Rules {
    fn ignore_key(&self, k: &str) -> bool {
        self.ignored.contains(k) || self.ignored_patterns.iter().any(|r| r.is_match(k))
    }

    fn redact_key(&self, k: &str) -> bool {
        !self.allow_all_keys && !self.allowed.contains(k)
    }

    fn mask_key(&self, k: &str) -> bool {
        self.blocked_keys.iter().any(|r| r.is_match(k))
    }

    fn class(&self, k: &str) -> Class {
        if let Some(class) = self.classes.borrow().get(k) {
            return *class;
        }
        let class = match (self.ignore_key(k), self.redact_key(k)) {
            (true, _) => Class::Ignored,
            (false, true) => Class::Redacted,
            (false, false) => Class::Kept {
                masked: self.mask_key(k),
            },
        };
        let mut classes = self.classes.borrow_mut();
        if classes.len() < CLASSED_KEYS {
            classes.insert(k.to_string(), class);
        }
        class
    }

    fn allow_value(&self, v: &str) -> bool {
        self.allowed_values.iter().any(|r| r.is_match(v))
    }

    /// Every match of `regex` replaced by `****` or its hash.
    fn mask(&self, value: &str, regex: &Regex) -> String {
        regex
            .replace_all(value, |caps: &regex::Captures| self.hash_of(&caps[0]))
            .into_owned()
    }

    /// What `.*` leaves of a value: each line masked. A value without a line break is one
    /// match, masked without running the regex (the common case, on every masked key).
    fn mask_whole(&self, value: &str) -> String {
        match value.contains('\n') {
            true => self.mask(value, &self.mask_all),
            false => self.hash_of(value),
        }
    }

    pub fn hash_of(&self, text: &str) -> String {
        let bytes = text.as_bytes();
        match self.hash {
            Hash::None => "****".into(),
            Hash::Sha1 => hex(&sha1::Sha1::digest(bytes)),
            Hash::Sha3 => hex(&sha3::Sha3_256::digest(bytes)),
            Hash::Md5 => hex(&md5::Md5::digest(bytes)),
            Hash::HmacSha256 => {
                let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&self.hmac_key)
                    .expect("HMAC takes any key length");
                mac.update(bytes);
                hex(&mac.finalize().into_bytes())
            }
            Hash::HmacSha512 => {
                let mut mac = Hmac::<sha2::Sha512>::new_from_slice(&self.hmac_key)
                    .expect("HMAC takes any key length");
                mac.update(bytes);
                hex(&mac.finalize().into_bytes())
            }
        }
    }

    /// The value with its blocked matches masked, `None` when that changes nothing.
    fn blocked(&self, value: &str) -> Option<String> {
        if !self.blocked_values.iter().any(|r| r.is_match(value)) {
            return None;
        }
        let processed = self.block_values(value);
        (processed != value).then_some(processed)
    }

    /// Each blocked-value pattern in turn masks its matches.
    fn block_values(&self, value: &str) -> String {
        let mut value = value.to_string();
        for regex in &self.blocked_values {
            if regex.is_match(&value) {
                value = self.mask(&value, regex);
            }
        }
        value
    }

    /// Redacts an attribute map in place (the collector's `processAttrs`); `true` when it
    /// changed.
    pub fn attributes(&self, attrs: &mut Vec<(String, Tree)>) -> bool {
        let mut out = Outcome::default();
        let mut changed = false;
        for (k, value) in attrs.iter_mut() {
            let masked_key = match self.class(k) {
                Class::Ignored => {
                    out.ignored.push(k.clone());
                    continue;
                }
                Class::Redacted => {
                    out.redacted.push(k.clone());
                    continue;
                }
                Class::Kept { masked } => masked,
            };
            // Borrowed where it can be: most values are only looked at.
            let masked = {
                let text: Cow<str> = match self.redact_all_types {
                    true => value.as_string().into(),
                    false => value.str().into(),
                };
                if self.allow_value(&text) {
                    out.allowed.push(k.clone());
                    continue;
                }
                match masked_key {
                    true => Some(self.mask_whole(&text)),
                    false => self.blocked(&text),
                }
            };
            if let Some(masked) = masked {
                out.masked.push(k.clone());
                *value = Tree::Str(masked);
                changed = true;
            }
        }
        for k in &out.redacted {
            remove_first(attrs, k);
            changed = true;
        }
        changed |= self.summarize(attrs, out, "redaction.");
        changed
    }

    /// Redacts a log body in place (the collector's `processLogBody`), writing the body's
    /// summary to the record's attributes. Returns whether the body and the attributes changed.
    pub fn body(&self, body: &mut Tree, attrs: &mut Vec<(String, Tree)>) -> (bool, bool) {
        let mut out = Outcome::default();
        let mut changed = false;
        match body {
            Tree::Map(entries) => {
                let mut redacted = Vec::new();
                for (k, v) in entries.iter_mut() {
                    if self.ignore_key(k) {
                        out.ignored.push(k.clone());
                    } else if self.redact_key(k) {
                        redacted.push(k.clone());
                    } else if self.mask_key(k) {
                        out.masked.push(k.clone());
                        *v = Tree::Str(self.mask_whole(v.str()));
                        changed = true;
                    } else {
                        changed |= self.body_value(k, v, &mut out);
                    }
                }
                for k in redacted {
                    remove_first(entries, &k);
                    out.redacted.push(k);
                    changed = true;
                }
            }
            Tree::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    changed |= self.body_value(&format!("[{i}]"), item, &mut out);
                }
            }
            scalar => {
                let text = scalar.as_string();
                if self.allow_value(&text) {
                    // The collector returns here, before writing any summary.
                    return (false, false);
                }
                let processed = self.block_values(&text);
                if processed != text {
                    out.masked.push("body".into());
                    *scalar = Tree::Str(processed);
                    changed = true;
                }
            }
        }
        (changed, self.summarize(attrs, out, "redaction.body."))
    }

    /// A value inside a body, at `path`.
    fn body_value(&self, path: &str, value: &mut Tree, out: &mut Outcome) -> bool {
        let mut changed = false;
        match value {
            Tree::Map(entries) => {
                let mut redacted = Vec::new();
                for (k, v) in entries.iter_mut() {
                    let at = format!("{path}.{k}");
                    if self.ignore_key(k) {
                        out.ignored.push(at);
                    } else if self.redact_key(k) {
                        redacted.push(k.clone());
                    } else if self.mask_key(k) {
                        out.masked.push(at);
                        *v = Tree::Str(self.mask_whole(v.str()));
                        changed = true;
                    } else {
                        changed |= self.body_value(&at, v, out);
                    }
                }
                for k in redacted {
                    remove_first(entries, &k);
                    out.redacted.push(format!("{path}.{k}"));
                    changed = true;
                }
            }
            Tree::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    changed |= self.body_value(&format!("{path}.[{i}]"), item, out);
                }
            }
            scalar => {
                let text = scalar.as_string();
                if self.allow_value(&text) {
                    out.allowed.push(path.into());
                    return false;
                }
                let processed = self.block_values(&text);
                if processed != text {
                    out.masked.push(path.into());
                    *scalar = Tree::Str(processed);
                    changed = true;
                }
            }
        }
        changed
    }

    /// Writes the summary attributes (`prefix` + `redacted.keys`, `redacted.count`, …).
    fn summarize(&self, attrs: &mut Vec<(String, Tree)>, out: Outcome, prefix: &str) -> bool {
        let mut changed = false;
        for (keys, what, with_keys) in [
            (out.redacted, "redacted", true),
            (out.masked, "masked", true),
            (out.allowed, "allowed", true),
            (out.ignored, "ignored", false),
        ] {
            changed |= self.meta(attrs, keys, prefix, what, with_keys);
        }
        changed
    }

    /// The collector's `addMetaAttrs`: `debug` merges the keys with any already listed,
    /// sorted, comma-separated; `debug` and `info` add the count to any already there.
    fn meta(
        &self,
        attrs: &mut Vec<(String, Tree)>,
        mut keys: Vec<String>,
        prefix: &str,
        what: &str,
        with_keys: bool,
    ) -> bool {
        if keys.is_empty() || self.summary == Summary::Silent {
            return false;
        }
        let mut count = keys.len() as i64;
        if self.summary == Summary::Debug && with_keys {
            let name = format!("{prefix}{what}.keys");
            if let Some(Tree::Str(existing)) = get(attrs, &name)
                && !existing.is_empty()
            {
                keys.extend(existing.split(',').map(String::from));
            }
            keys.sort();
            put(attrs, &name, Tree::Str(keys.join(",")));
        }
        let name = format!("{prefix}{what}.count");
        if let Some(existing) = get(attrs, &name) {
            count += match existing {
                Tree::Int(i) => *i,
                _ => 0,
            };
        }
        put(attrs, &name, Tree::Int(count));
        true
    }
}

fn get<'a>(attrs: &'a [(String, Tree)], key: &str) -> Option<&'a Tree> {
    attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Overwrites the first entry with the key, or appends one.
fn put(attrs: &mut Vec<(String, Tree)>, key: &str, value: Tree) {
    match attrs.iter_mut().find(|(k, _)| k == key) {
        Some(entry) => entry.1 = value,
        None => attrs.push((key.into(), value)),
    }
}

/// Removes the first entry with the key as pdata does: the last entry takes its place.
fn remove_first(attrs: &mut Vec<(String, Tree)>, key: &str) {
    if let Some(i) = attrs.iter().position(|(k, _)| k == key) {
        attrs.swap_remove(i);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
