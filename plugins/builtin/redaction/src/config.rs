//! The collector's `redaction` config, unchanged, checked at `init`. The URL and database
//! sanitizers are not built: enabling one is refused, naming it.

use serde::Deserialize;
use serde_json::Value as Json;

/// The processor's settings; every key is the collector's.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Keep every attribute key (`allowed_keys` is then not used); blocked values are still
    /// masked.
    pub allow_all_keys: bool,
    /// The attribute keys kept; every other key is removed. Empty removes all.
    pub allowed_keys: Option<Vec<String>>,
    /// Regular expressions (Go RE2 syntax) on keys whose whole value is masked.
    pub blocked_key_patterns: Option<Vec<String>>,
    /// Hash masked values instead of writing `****`: `sha1`, `sha3`, `md5`, `hmac-sha256`,
    /// `hmac-sha512` (any case).
    pub hash_function: String,
    /// The HMAC key, at least 32 bytes for `hmac-sha256` and 64 for `hmac-sha512`.
    pub hmac_key: String,
    /// Keys left exactly as they are: neither removed nor masked.
    pub ignored_keys: Option<Vec<String>>,
    /// Regular expressions on keys left exactly as they are.
    pub ignored_key_patterns: Option<Vec<String>>,
    /// Check every value by its string form (numbers, booleans, arrays, maps), not strings only.
    pub redact_all_types: bool,
    /// Regular expressions on values; each match is masked.
    pub blocked_values: Option<Vec<String>>,
    /// Regular expressions on values that are left as they are, blocked or not.
    pub allowed_values: Option<Vec<String>>,
    /// The collector's database query obfuscation: not built here; only a disabled one is
    /// accepted.
    pub db_sanitizer: Option<Json>,
    /// What the processor writes about its work: `debug` (keys and counts), `info` (counts),
    /// `silent` or unset (nothing).
    pub summary: String,
    /// The collector's URL sanitizer: not built here; only a disabled one is accepted.
    pub url_sanitizer: Option<Json>,
}

/// How a masked value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    None,
    Sha1,
    Sha3,
    Md5,
    HmacSha256,
    HmacSha512,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Summary {
    Silent,
    Info,
    Debug,
}

impl Config {
    pub fn hash(&self) -> Result<Hash, String> {
        let hash = match self.hash_function.to_lowercase().as_str() {
            "" => Hash::None,
            "sha1" => Hash::Sha1,
            "sha3" => Hash::Sha3,
            "md5" => Hash::Md5,
            "hmac-sha256" => Hash::HmacSha256,
            "hmac-sha512" => Hash::HmacSha512,
            other => {
                return Err(format!(
                    "hash_function: unknown HashFunction {other}, allowed functions are sha1, sha3, md5, hmac-sha256 and hmac-sha512"
                ));
            }
        };
        let (name, min) = match hash {
            Hash::HmacSha256 => ("hmac-sha256", 32),
            Hash::HmacSha512 => ("hmac-sha512", 64),
            _ => return Ok(hash),
        };
        if self.hmac_key.is_empty() {
            return Err(format!(
                "hmac_key: must not be empty when hash_function is \"{name}\""
            ));
        }
        if self.hmac_key.len() < min {
            return Err(format!(
                "hmac_key: must be at least {min} bytes long for \"{name}\", got {} bytes",
                self.hmac_key.len()
            ));
        }
        Ok(hash)
    }

    pub fn summary(&self) -> Result<Summary, String> {
        match self.summary.as_str() {
            "debug" => Ok(Summary::Debug),
            "info" => Ok(Summary::Info),
            "silent" | "" => Ok(Summary::Silent),
            // The collector writes nothing for any other word; a typo is refused here instead.
            other => Err(format!(
                "summary: unknown level `{other}`; expected debug, info or silent"
            )),
        }
    }

    /// Refuses the sanitizers this plugin does not have, when they are switched on.
    pub fn refuse_sanitizers(&self) -> Result<(), String> {
        if let Some(url) = &self.url_sanitizer
            && enabled(url)
        {
            return Err("url_sanitizer: the URL sanitizer is not supported by trailhead's redaction; remove it or set enabled: false".into());
        }
        if let Some(Json::Object(db)) = &self.db_sanitizer {
            for (name, section) in db {
                if enabled(section) {
                    return Err(format!(
                        "db_sanitizer.{name}: database obfuscation is not supported by trailhead's redaction; remove it or set enabled: false"
                    ));
                }
            }
        }
        Ok(())
    }
}

fn enabled(section: &Json) -> bool {
    section
        .get("enabled")
        .and_then(Json::as_bool)
        .unwrap_or(false)
}
