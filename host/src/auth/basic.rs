//! HTTP Basic authentication: the collector's `basicauth` extension (contrib v0.161.0). With
//! `htpasswd` it is a server authenticator: a request's `Authorization: Basic base64(user:pw)`
//! must match a user of the file and/or inline content (inline read last, so it wins). With
//! `client_auth` it is a client one: every request an exporter sends carries those
//! credentials. One extension is one side, as in the collector, which refuses both.
//!
//! The refusals are the collector's messages: `no basic auth provided`, `invalid
//! authorization scheme prefix`, `invalid authorization format`, `invalid credentials`.
//! Unlike the collector (which reads the htpasswd file once, at start), the file is re-read
//! when it changes, as trailhead does for every secret on disk.

use super::htpasswd::Users;
use super::{ClientHeaders, Refusal};
use crate::secrets::Secret;
use base64::Engine;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// `extensions: basicauth/NAME:`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BasicAuthConfig {
    /// Server side: the users receivers accept.
    pub htpasswd: Option<HtpasswdSettings>,
    /// Client side: the credentials exporters send.
    pub client_auth: Option<ClientAuthSettings>,
}

/// `htpasswd:` at least one of `file` and `inline`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HtpasswdSettings {
    /// An htpasswd file (`htpasswd -B` writes bcrypt; MD5, SHA, SHA-crypt and plain work too).
    pub file: Option<PathBuf>,
    /// htpasswd lines inline; read after the file, so a user here wins.
    pub inline: Option<Secret>,
}

/// `client_auth:` the credentials an exporter sends.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientAuthSettings {
    /// The user name.
    pub username: String,
    /// A file holding the user name (wins over `username`); re-read when it changes.
    pub username_file: Option<PathBuf>,
    /// The password.
    pub password: Option<Secret>,
    /// A file holding the password (wins over `password`); re-read when it changes.
    pub password_file: Option<PathBuf>,
}

impl BasicAuthConfig {
    /// The collector's `Validate`: exactly one side.
    pub fn validate(&self) -> Result<(), String> {
        match (&self.htpasswd, &self.client_auth) {
            (Some(_), Some(_)) => {
                Err("only one of `htpasswd` or `client_auth` can be specified".into())
            }
            (None, None) => Err(
                "no credential source provided: give `htpasswd` (receivers) \
                                 or `client_auth` (exporters)"
                    .into(),
            ),
            (Some(htpasswd), None) if htpasswd.file.is_none() && htpasswd.is_inline_empty() => {
                Err("htpasswd: no credential source provided: give `file` or `inline`".into())
            }
            _ => Ok(()),
        }
    }
}

/// The users a receiver accepts.
pub struct Htpasswd {
    users: Users,
}

impl HtpasswdSettings {
    fn is_inline_empty(&self) -> bool {
        self.inline.as_ref().is_none_or(|s| s.0.is_empty())
    }

    /// The same settings with `file` resolved by `resolve`.
    pub fn resolved(&self, resolve: &dyn Fn(&Path) -> PathBuf) -> Self {
        HtpasswdSettings {
            file: self.file.as_deref().map(resolve),
            inline: self.inline.clone(),
        }
    }

    /// The file, to watch.
    pub fn files(&self) -> Vec<PathBuf> {
        self.file.iter().cloned().collect()
    }

    /// Reads the file (resolved) and the inline lines. Lines the collector skips are skipped
    /// here too, with a warning naming their line and user.
    pub fn load(&self) -> Result<Htpasswd, String> {
        let mut content = String::new();
        if let Some(file) = &self.file {
            content = std::fs::read_to_string(file)
                .map_err(|e| format!("open htpasswd file {}: {e}", file.display()))?;
            content.push('\n');
        }
        if let Some(inline) = &self.inline {
            content.push_str(&inline.0);
        }
        let (users, skipped) =
            Users::parse(&content).map_err(|e| format!("read htpasswd content: {e}"))?;
        for line in skipped {
            tracing::warn!(%line, "htpasswd entry skipped, as the collector skips it");
        }
        Ok(Htpasswd { users })
    }
}

impl Htpasswd {
    /// Whether the request's `Authorization` carries a user's credentials.
    pub fn check(&self, headers: &http::HeaderMap) -> Result<(), Refusal> {
        let refuse = |message: &str| Err(Refusal::new(message, "Basic"));
        let given = super::first_header(headers, "authorization").unwrap_or_default();
        if given.is_empty() {
            return refuse("no basic auth provided");
        }
        const PREFIX: &[u8] = b"basic ";
        if given.len() < PREFIX.len() || !given[..PREFIX.len()].eq_ignore_ascii_case(PREFIX) {
            return refuse("invalid authorization scheme prefix");
        }
        let Ok(decoded) = GO_BASE64.decode(&given[PREFIX.len()..]) else {
            return refuse("invalid authorization format");
        };
        let Some(colon) = decoded.iter().position(|b| *b == b':') else {
            return refuse("invalid authorization format");
        };
        let user = String::from_utf8_lossy(&decoded[..colon]);
        if self.users.matches(&user, &decoded[colon + 1..]) {
            Ok(())
        } else {
            refuse("invalid credentials")
        }
    }
}

/// Go's `base64.StdEncoding`, which the collector decodes the header with.
const GO_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

impl ClientAuthSettings {
    /// The same settings with the files resolved by `resolve`.
    pub fn resolved(&self, resolve: &dyn Fn(&Path) -> PathBuf) -> Self {
        ClientAuthSettings {
            username_file: self.username_file.as_deref().map(resolve),
            password_file: self.password_file.as_deref().map(resolve),
            ..self.clone()
        }
    }

    /// The files, to watch.
    pub fn files(&self) -> Vec<PathBuf> {
        [&self.username_file, &self.password_file]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// Reads the files (resolved) now: `authorization: Basic …`. A user name with a colon is
    /// refused, as the collector refuses it.
    pub fn load(&self) -> Result<ClientHeaders, String> {
        let read = |file: &Path| {
            std::fs::read_to_string(file)
                .map(|s| s.trim().to_string())
                .map_err(|e| format!("failed to read credentials file {}: {e}", file.display()))
        };
        let username = match &self.username_file {
            Some(file) => read(file)?,
            None => self.username.clone(),
        };
        let password = match &self.password_file {
            Some(file) => read(file)?,
            None => self.password.clone().map(|p| p.0).unwrap_or_default(),
        };
        if username.contains(':') {
            return Err("invalid authorization format: the user name has a colon".into());
        }
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        Ok(ClientHeaders::authorization(
            format!("Basic {encoded}"),
            true,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> BasicAuthConfig {
        crate::config::tree::from_str(text).unwrap()
    }

    fn headers(authorization: &str) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        map.insert(http::header::AUTHORIZATION, authorization.parse().unwrap());
        map
    }

    fn basic(credentials: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        )
    }

    #[test]
    fn server_checks_with_the_collector_messages() {
        let server = config("htpasswd: {inline: \"alice:wonder\\nbob:builder\"}");
        server.validate().unwrap();
        let users = server.htpasswd.unwrap().load().unwrap();
        assert!(users.check(&headers(&basic("alice:wonder"))).is_ok());
        assert!(
            users
                .check(&headers(&basic("bob:builder").replace("Basic", "bAsIc")))
                .is_ok()
        );
        let message = |value: &str| users.check(&headers(value)).unwrap_err().message;
        assert_eq!(message(&basic("alice:builder")), "invalid credentials");
        assert_eq!(message("Bearer x"), "invalid authorization scheme prefix");
        assert_eq!(message("Basic !!!"), "invalid authorization format");
        assert_eq!(message(&basic("nocolon")), "invalid authorization format");
        let missing = users.check(&http::HeaderMap::new()).unwrap_err();
        assert_eq!(missing.message, "no basic auth provided");
    }

    #[test]
    fn inline_wins_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("htpasswd");
        std::fs::write(&file, "alice:fromfile\ncarol:c").unwrap();
        let text = format!(
            "htpasswd: {{file: {}, inline: 'alice:inline'}}",
            file.display()
        );
        let users = config(&text).htpasswd.unwrap().load().unwrap();
        assert!(users.check(&headers(&basic("alice:inline"))).is_ok());
        assert!(users.check(&headers(&basic("alice:fromfile"))).is_err());
        assert!(users.check(&headers(&basic("carol:c"))).is_ok());
    }

    #[test]
    fn one_side_only_and_client_credentials() {
        let both = config("{htpasswd: {inline: 'a:b'}, client_auth: {username: u}}");
        assert!(both.validate().unwrap_err().contains("only one of"));
        assert!(
            config("{}")
                .validate()
                .unwrap_err()
                .contains("no credential source")
        );
        assert!(config("htpasswd: {}").validate().is_err());
        let client = config("client_auth: {username: user, password: hidden}");
        client.validate().unwrap();
        let settings = client.client_auth.unwrap();
        assert!(!format!("{settings:?}").contains("hidden"));
        let sent = settings.load().unwrap();
        assert_eq!(sent.ops[0].value.0, basic("user:hidden"));
        let colon = config("client_auth: {username: 'a:b'}")
            .client_auth
            .unwrap();
        assert!(colon.load().is_err());
    }
}
