//! The collector's `oidc` extension (contrib `oidcauthextension` v0.161.0, go-oidc v3.21.0): a
//! server authenticator that accepts a request whose `attribute` header (`authorization` by
//! default) is `<scheme> <JWT>`, the JWT signed by a key of a configured provider and naming
//! it as issuer and the `audience` among its audiences.
//!
//! As there:
//! - each provider's discovery document (`<issuer_url>/.well-known/openid-configuration`) is
//!   read at start, and a provider that cannot be read fails the start; its `issuer` must be
//!   `issuer_url` exactly; `issuer_ca_path` is then the one CA trusted for it;
//! - the signature algorithms are those of the document's
//!   `id_token_signing_alg_values_supported` that go-oidc knows, RS256 when none;
//! - the JWKS is fetched when a token first needs it, and again when a token names a key id
//!   the cache lacks; `public_keys_file` (a local JWKS) replaces discovery;
//! - `exp` is required and has no leeway, `nbf` has five minutes; `iss` and `aud` are exact;
//! - with several `providers`, the token's (unverified) `iss` picks one; with one, it is used;
//! - the messages are the collector's (`authentication didn't succeed`, `failed to verify
//!   token: …`), HTTP 401 / gRPC UNAUTHENTICATED.
//!
//! Where trailhead differs: the JWKS is fetched again for an unknown key id at most once per
//! [`MIN_REFRESH`] (go-oidc fetches on every token no cached key verifies, which lets anyone
//! make the gateway hammer its provider), and ES512 (P-521) tokens are refused: the
//! `jsonwebtoken` crate, which verifies here, does not have that curve. `oidc` with no
//! provider at all is refused at load (the collector starts it and refuses every request).
//!
//! `jsonwebtoken` (with its pure-Rust `rust_crypto` backend) parses JWTs and JWKs and checks
//! signatures; the claims are checked here with go-oidc's rules, which differ from its own.

use super::Refusal;
use crate::secrets::{Rotating, Secrets};
use arc_swap::ArcSwap;
use bytes::Bytes;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_rustls::rustls;

/// The shortest time between two fetches of a provider's keys for unknown key ids.
pub const MIN_REFRESH: Duration = Duration::from_secs(5);

/// How long a request to a provider may take, as the collector's client.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(5);

/// go-oidc's leeway on `nbf`.
const NBF_LEEWAY_SECS: f64 = 300.0;

/// `extensions: oidc/NAME:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OidcConfig {
    /// The header holding `<scheme> <token>`; `authorization` by default.
    pub attribute: String,
    /// The provider's issuer URL (deprecated in the collector for `providers`).
    pub issuer_url: String,
    /// The audience tokens must name (or `ignore_audience`).
    pub audience: String,
    /// Skip the audience check.
    pub ignore_audience: bool,
    /// A PEM CA to trust for the provider's TLS certificate, instead of the system's.
    pub issuer_ca_path: Option<PathBuf>,
    /// The claim naming the user, instead of `sub`; it must be there and a string.
    pub username_claim: String,
    /// The claim holding the user's groups; it must be there when set.
    pub groups_claim: String,
    /// Several providers; the top-level keys, when set, are the first of them.
    pub providers: Vec<ProviderConfig>,
}

impl Default for OidcConfig {
    fn default() -> Self {
        OidcConfig {
            attribute: "authorization".into(),
            issuer_url: String::new(),
            audience: String::new(),
            ignore_audience: false,
            issuer_ca_path: None,
            username_claim: String::new(),
            groups_claim: String::new(),
            providers: Vec::new(),
        }
    }
}

/// One entry of `providers:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderConfig {
    /// The provider's issuer URL.
    pub issuer_url: String,
    /// The audience tokens must name (or `ignore_audience`).
    pub audience: String,
    /// Skip the audience check.
    pub ignore_audience: bool,
    /// Skip the issuer check (only with a single provider).
    pub ignore_issuer: bool,
    /// A PEM CA to trust for the provider's TLS certificate, instead of the system's.
    pub issuer_ca_path: Option<PathBuf>,
    /// The claim naming the user, instead of `sub`.
    pub username_claim: String,
    /// The claim holding the user's groups.
    pub groups_claim: String,
    /// A local JWKS used instead of discovery; re-read when it changes.
    pub public_keys_file: Option<PathBuf>,
}

impl OidcConfig {
    /// The providers, the top-level (legacy) one first when any of its keys is set.
    pub fn providers(&self) -> Vec<ProviderConfig> {
        let legacy = !self.issuer_url.is_empty()
            || !self.audience.is_empty()
            || self.ignore_audience
            || self.issuer_ca_path.is_some()
            || !self.username_claim.is_empty()
            || !self.groups_claim.is_empty();
        let mut providers = Vec::new();
        if legacy {
            providers.push(ProviderConfig {
                issuer_url: self.issuer_url.clone(),
                audience: self.audience.clone(),
                ignore_audience: self.ignore_audience,
                issuer_ca_path: self.issuer_ca_path.clone(),
                username_claim: self.username_claim.clone(),
                groups_claim: self.groups_claim.clone(),
                ..Default::default()
            });
        }
        providers.extend(self.providers.iter().cloned());
        providers
    }

    /// The collector's `Validate`, and a refusal of a config without any provider.
    pub fn validate(&self) -> Result<(), String> {
        let providers = self.providers();
        if providers.is_empty() {
            return Err(
                "no provider: give `issuer_url` and `audience`, or `providers` (the \
                        collector would start and refuse every request)"
                    .into(),
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for provider in &providers {
            if providers.len() > 1 && provider.ignore_issuer {
                return Err(
                    "ignore_issuer cannot be true when multiple providers are configured".into(),
                );
            }
            if !seen.insert(provider.issuer_url.as_str()) {
                return Err(format!(
                    "duplicate issuer URL found: {}",
                    provider.issuer_url
                ));
            }
            if provider.audience.is_empty() && !provider.ignore_audience {
                return Err("no Audience provided for the OIDC configuration".into());
            }
            if provider.issuer_url.is_empty() {
                return Err("no IssuerURL provided for the OIDC configuration".into());
            }
        }
        Ok(())
    }

    /// The same settings with every path resolved by `resolve`.
    pub fn resolved(&self, resolve: &dyn Fn(&Path) -> PathBuf) -> Self {
        let mut config = self.clone();
        config.issuer_ca_path = config.issuer_ca_path.as_deref().map(resolve);
        for provider in &mut config.providers {
            provider.issuer_ca_path = provider.issuer_ca_path.as_deref().map(resolve);
            provider.public_keys_file = provider.public_keys_file.as_deref().map(resolve);
        }
        config
    }
}

/// A key that may verify tokens: its id, and the algorithms it may verify.
struct Key {
    kid: Option<String>,
    key: DecodingKey,
    algorithms: Vec<Algorithm>,
}

/// Where a provider's keys come from.
enum Keys {
    /// The provider's `jwks_uri`, cached.
    Remote(RemoteKeys),
    /// `public_keys_file`, re-read when it changes.
    File(Arc<Rotating<Vec<Key>>>),
}

/// A provider's JWKS, fetched when needed and cached.
struct RemoteKeys {
    jwks_uri: String,
    client: HttpClient,
    cached: ArcSwap<Vec<Key>>,
    /// When the keys were last fetched; held while a fetch is in flight, so concurrent
    /// requests with an unknown key id wait for one fetch instead of each making one.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

/// One configured provider, ready to verify.
struct Provider {
    config: ProviderConfig,
    /// The issuer tokens must name: `issuer_url`, which discovery confirmed.
    issuer: String,
    /// The signature algorithms it accepts.
    algorithms: Vec<Algorithm>,
    keys: Keys,
}

/// An `oidc` extension as receivers check requests with it.
pub struct Verifier {
    attribute: String,
    providers: Vec<Provider>,
}

/// Every algorithm go-oidc knows that `jsonwebtoken` can verify (ES512 it cannot: no P-521).
const SUPPORTED: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The algorithm a JOSE name means, if go-oidc supports it and so can trailhead.
fn supported(name: &str) -> Option<Algorithm> {
    name.parse::<Algorithm>()
        .ok()
        .filter(|a| SUPPORTED.contains(a))
}

impl Verifier {
    /// Reads each provider's discovery document (or key file) now: a provider that cannot be
    /// read fails the start, as in the collector. `config` has its paths resolved.
    pub fn start(config: &OidcConfig, secrets: &Secrets, user: &str) -> Result<Verifier, String> {
        let mut providers = Vec::new();
        for provider in config.providers() {
            let started = match &provider.public_keys_file {
                Some(file) => Provider::from_file(provider.clone(), file.clone(), secrets, user),
                None => Provider::discover(provider.clone()),
            };
            providers.push(started.map_err(|e| {
                format!(
                    "failed to get configuration from the auth server {}: {e}",
                    provider.issuer_url
                )
            })?);
        }
        Ok(Verifier {
            attribute: config.attribute.to_ascii_lowercase(),
            providers,
        })
    }

    /// Whether the request carries a valid token: the collector's `Authenticate`.
    pub async fn check(&self, headers: &http::HeaderMap) -> Result<(), Refusal> {
        let refuse = |message: String| Err(Refusal::new(message, "Bearer"));
        let Some(value) = headers.get(self.attribute.as_str()) else {
            return refuse("authentication didn't succeed".into());
        };
        let parts: Vec<&[u8]> = value.as_bytes().split(|b| *b == b' ').collect();
        let [_, raw] = parts[..] else {
            return refuse("invalid authorization header format".into());
        };
        let Ok(raw) = std::str::from_utf8(raw) else {
            return refuse("invalid authorization header format".into());
        };
        let issuer = match unverified_issuer(raw) {
            Ok(issuer) => issuer,
            Err(e) => return refuse(format!("failed to parse the token: {e}")),
        };
        let provider = match self.providers.as_slice() {
            [only] => only,
            all => match all.iter().find(|p| p.config.issuer_url == issuer) {
                Some(provider) => provider,
                None => {
                    return refuse(format!(
                        "failed to resolve OIDC provider for the issuer {issuer:?}: no OIDC \
                         provider configured for the issuer {issuer:?}"
                    ));
                }
            },
        };
        match provider.verify(raw).await {
            Ok(()) => Ok(()),
            Err(e) => refuse(e),
        }
    }
}

/// The token's `iss`, read without verifying anything, to pick its provider; a token whose
/// algorithm go-oidc does not know is malformed there.
fn unverified_issuer(raw: &str) -> Result<String, String> {
    let header =
        jsonwebtoken::decode_header(raw).map_err(|e| format!("oidc: malformed jws: {e}"))?;
    if !SUPPORTED.contains(&header.alg) {
        return Err("oidc: malformed jws: unexpected signature algorithm".into());
    }
    let claims: Value = jsonwebtoken::dangerous::insecure_decode_claims(raw)
        .map_err(|e| format!("oidc: failed to unmarshal claims: {e}"))?;
    match claims.get("iss") {
        None => Ok(String::new()),
        Some(Value::String(issuer)) => Ok(issuer.clone()),
        Some(_) => Err("oidc: failed to unmarshal claims: iss is not a string".into()),
    }
}

impl Provider {
    /// A provider from its discovery document, read now.
    fn discover(config: ProviderConfig) -> Result<Provider, String> {
        let ca = config.issuer_ca_path.clone();
        let discovery = format!(
            "{}/.well-known/openid-configuration",
            config
                .issuer_url
                .strip_suffix('/')
                .unwrap_or(&config.issuer_url)
        );
        let document: Discovery = block_on(async move {
            let client = http_client(ca.as_deref())?;
            let body = get(&client, &discovery).await?;
            serde_json::from_slice(&body)
                .map_err(|e| format!("oidc: failed to decode provider discovery object: {e}"))
        })??;
        if document.issuer != config.issuer_url {
            return Err(format!(
                "oidc: issuer URL provided to client ({:?}) did not match the issuer URL \
                 returned by provider ({:?})",
                config.issuer_url, document.issuer
            ));
        }
        let mut algorithms: Vec<Algorithm> = document
            .id_token_signing_alg_values_supported
            .iter()
            .filter_map(|name| supported(name))
            .collect();
        if algorithms.is_empty() {
            algorithms.push(Algorithm::RS256);
        }
        let keys = Keys::Remote(RemoteKeys {
            jwks_uri: document.jwks_uri,
            client: http_client(config.issuer_ca_path.as_deref())?,
            cached: ArcSwap::from_pointee(Vec::new()),
            last_fetch: tokio::sync::Mutex::new(None),
        });
        Ok(Provider {
            issuer: config.issuer_url.clone(),
            config,
            algorithms,
            keys,
        })
    }

    /// A provider whose keys are a local JWKS, watched for changes.
    fn from_file(
        config: ProviderConfig,
        file: PathBuf,
        secrets: &Secrets,
        user: &str,
    ) -> Result<Provider, String> {
        let path = file.clone();
        let keys = secrets.watch(format!("{user} oidc keys"), vec![file], move || {
            let text = std::fs::read(&path)
                .map_err(|e| format!("could not read file {}: {e}", path.display()))?;
            let keys = parse_jwks(&text)?;
            if keys.is_empty() {
                return Err(
                    "file contains no supported keys (supported types are RSA, ECDSA, \
                            and ED25519)"
                        .to_string(),
                );
            }
            Ok(keys)
        })?;
        Ok(Provider {
            issuer: config.issuer_url.clone(),
            config,
            // Each key carries its own; the union is what a token may use.
            algorithms: SUPPORTED.to_vec(),
            keys: Keys::File(keys),
        })
    }

    /// go-oidc's `Verify`, then the collector's claim checks.
    async fn verify(&self, raw: &str) -> Result<(), String> {
        let failed = |e: String| format!("failed to verify token: {e}");
        let header = jsonwebtoken::decode_header(raw)
            .map_err(|e| failed(format!("oidc: malformed jwt: {e}")))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(failed(
                "oidc: malformed jwt: unexpected signature algorithm".into(),
            ));
        }
        let claims = self
            .verified_claims(raw, header.alg, header.kid.as_deref())
            .await
            .map_err(|e| failed(format!("failed to verify signature: {e}")))?;
        self.check_claims(&claims).map_err(failed)?;
        let subject = match self.config.username_claim.as_str() {
            "" => None,
            claim => Some(claim),
        };
        if let Some(claim) = subject {
            match claims.get(claim) {
                None => {
                    return Err("failed to get subject from claims in the token: username \
                                    claim from the OIDC configuration not found on the token \
                                    returned by the OIDC provider"
                        .into());
                }
                Some(Value::String(_)) => {}
                Some(_) => {
                    return Err("failed to get subject from claims in the token: the \
                                       username returned by the OIDC provider isn't a regular \
                                       string"
                        .into());
                }
            }
        }
        if !self.config.groups_claim.is_empty() && claims.get(&self.config.groups_claim).is_none() {
            return Err(
                "failed to get groups from claims in the token: groups claim from the \
                        OIDC configuration not found on the token returned by the OIDC provider"
                    .into(),
            );
        }
        Ok(())
    }

    /// The claims of a token one of the provider's keys signed, fetching the keys when the
    /// cache has none for its key id.
    async fn verified_claims(
        &self,
        raw: &str,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<Value, String> {
        match &self.keys {
            Keys::File(keys) => verify_with(&keys.load(), raw, alg, None)
                .ok_or_else(|| "no public keys able to verify jwt".to_string()),
            Keys::Remote(remote) => {
                let cached = remote.cached.load_full();
                if let Some(claims) = verify_with(&cached, raw, alg, kid) {
                    return Ok(claims);
                }
                let known =
                    kid.is_some_and(|kid| cached.iter().any(|k| k.kid.as_deref() == Some(kid)));
                if known {
                    return Err("failed to verify id token signature".into());
                }
                remote.refresh(&cached).await?;
                verify_with(&remote.cached.load(), raw, alg, kid)
                    .ok_or_else(|| "failed to verify id token signature".to_string())
            }
        }
    }

    /// go-oidc's issuer, audience and time checks.
    fn check_claims(&self, claims: &Value) -> Result<(), String> {
        let text = |name: &str| match claims.get(name) {
            None => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(format!(
                "oidc: failed to unmarshal claims: {name} is not a string"
            )),
        };
        let issuer = text("iss")?;
        text("sub")?;
        let audiences: Vec<String> = match claims.get("aud") {
            None => Vec::new(),
            Some(Value::String(one)) => vec![one.clone()],
            Some(many) => serde_json::from_value(many.clone())
                .map_err(|_| "oidc: failed to unmarshal claims: aud".to_string())?,
        };
        let time = |name: &str| match claims.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64().map(f64::trunc)),
            Some(_) => Err(format!(
                "oidc: failed to unmarshal claims: {name} is not a number"
            )),
        };
        let (expiry, not_before) = (time("exp")?, time("nbf")?);
        time("iat")?;
        if !self.config.ignore_issuer && issuer != self.issuer {
            return Err(format!(
                "oidc: id token issued by a different provider, expected {:?} got {issuer:?}",
                self.issuer
            ));
        }
        if !self.config.ignore_audience && !audiences.contains(&self.config.audience) {
            return Err(format!(
                "oidc: expected audience {:?} got {audiences:?}",
                self.config.audience
            ));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        // No `exp` is the zero time, long past.
        if expiry.is_none_or(|exp| exp < now) {
            return Err(format!(
                "oidc: token is expired (Token Expiry: {})",
                expiry.unwrap_or_default()
            ));
        }
        if let Some(nbf) = not_before
            && now + NBF_LEEWAY_SECS < nbf
        {
            return Err(format!(
                "oidc: current time {now} before the nbf (not before) time: {nbf}"
            ));
        }
        Ok(())
    }
}

/// The claims, when a key among `keys` (those with id `kid`, all when the token names none)
/// verifies the token's signature with `alg`.
fn verify_with(keys: &[Key], raw: &str, alg: Algorithm, kid: Option<&str>) -> Option<Value> {
    let mut validation = Validation::new(alg);
    // The claims are go-oidc's to check (`check_claims`), not jsonwebtoken's.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    validation.leeway = 0;
    keys.iter()
        .filter(|k| kid.is_none() || k.kid.is_none() || k.kid.as_deref() == kid)
        .filter(|k| k.algorithms.contains(&alg))
        .find_map(|k| jsonwebtoken::decode::<Value>(raw, &k.key, &validation).ok())
        .map(|data| data.claims)
}

impl RemoteKeys {
    /// Fetches the keys again unless another request just did (since `seen` was read) or the
    /// last fetch was under [`MIN_REFRESH`] ago.
    async fn refresh(&self, seen: &Arc<Vec<Key>>) -> Result<(), String> {
        let mut last_fetch = self.last_fetch.lock().await;
        if !Arc::ptr_eq(seen, &self.cached.load_full()) {
            return Ok(()); // fetched while this request waited
        }
        if last_fetch.is_some_and(|at| at.elapsed() < MIN_REFRESH) {
            return Ok(());
        }
        *last_fetch = Some(Instant::now());
        let body = get(&self.client, &self.jwks_uri)
            .await
            .map_err(|e| format!("fetching keys oidc: get keys failed {e}"))?;
        let keys = parse_jwks(&body)?;
        tracing::debug!(jwks_uri = %self.jwks_uri, keys = keys.len(), "oidc keys fetched");
        self.cached.store(Arc::new(keys));
        Ok(())
    }
}

/// The keys of a JWKS that go-oidc would use: those of a supported type whose `alg`, when
/// given, it supports. A key without `alg` may verify every algorithm of its type.
fn parse_jwks(body: &[u8]) -> Result<Vec<Key>, String> {
    #[derive(Deserialize)]
    struct Set {
        #[serde(default)]
        keys: Vec<Value>,
    }
    let set: Set =
        serde_json::from_slice(body).map_err(|e| format!("failed to parse JWKS: {e}"))?;
    let mut keys = Vec::new();
    for raw in set.keys {
        let alg = raw.get("alg").and_then(Value::as_str).map(str::to_string);
        let declared = match alg.as_deref() {
            Some(name) => match supported(name) {
                Some(alg) => Some(alg),
                None => continue, // go-oidc skips keys of algorithms it does not know
            },
            None => None,
        };
        let Ok(jwk) = serde_json::from_value::<Jwk>(raw) else {
            continue;
        };
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        let family = key.family();
        let algorithms = match declared {
            Some(alg) => vec![alg],
            None => family.algorithms().to_vec(),
        };
        if matches!(family, jsonwebtoken::AlgorithmFamily::Hmac) {
            continue; // a shared secret never verifies an OIDC token
        }
        keys.push(Key {
            kid: jwk.common.key_id.clone(),
            key,
            algorithms,
        });
    }
    Ok(keys)
}

/// The fields of a discovery document the collector reads.
#[derive(Deserialize)]
struct Discovery {
    #[serde(default)]
    issuer: String,
    #[serde(default)]
    jwks_uri: String,
    #[serde(default)]
    id_token_signing_alg_values_supported: Vec<String>,
}

type HttpClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Empty<Bytes>,
>;

/// A client for one provider: its CA alone when given (the collector's `RootCAs`), else the
/// system's. No idle connections are kept: keys are fetched rarely, and the client may be
/// built on a short-lived runtime.
fn http_client(ca: Option<&Path>) -> Result<HttpClient, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            use rustls::pki_types::{CertificateDer, pem::PemObject};
            let cert = CertificateDer::from_pem_file(path)
                .map_err(|e| format!("could not read the CA file {:?}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("cannot decode the contents of the CA file: {e}"))?;
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(PROVIDER_TIMEOUT));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector),
    )
}

/// The body of `url`, which must answer 200 within [`PROVIDER_TIMEOUT`].
async fn get(client: &HttpClient, url: &str) -> Result<Bytes, String> {
    use http_body_util::BodyExt;
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let request = http::Request::get(uri)
        .header(http::header::CACHE_CONTROL, "no-cache")
        .body(http_body_util::Empty::new())
        .map_err(|e| e.to_string())?;
    let fetched = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("unable to read response body: {e}"))?
            .to_bytes();
        if status != http::StatusCode::OK {
            return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
        }
        Ok(body)
    };
    tokio::time::timeout(PROVIDER_TIMEOUT, fetched)
        .await
        .map_err(|_| format!("{url}: no answer within {PROVIDER_TIMEOUT:?}"))?
}

/// Runs `future` to completion on a runtime of its own, on a thread of its own: discovery is
/// read while the receivers are built, which is not async, and may be on a runtime already.
fn block_on<T: Send>(future: impl Future<Output = T> + Send) -> Result<T, String> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map(|runtime| runtime.block_on(future))
                    .map_err(|e| format!("cannot start a runtime for discovery: {e}"))
            })
            .join()
            .map_err(|_| "discovery stopped unexpectedly".to_string())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> OidcConfig {
        crate::config::tree::from_str(text).unwrap()
    }

    #[test]
    fn the_collector_checks() {
        let problem = |text: &str| config(text).validate().unwrap_err();
        assert!(problem("{}").contains("no provider"));
        assert!(problem("issuer_url: https://a").contains("no Audience"));
        assert!(problem("audience: x").contains("no IssuerURL"));
        config("{issuer_url: https://a, ignore_audience: true}")
            .validate()
            .unwrap();
        let two = "providers: [{issuer_url: https://a, audience: x}, \
                   {issuer_url: https://a, audience: y}]";
        assert!(problem(two).contains("duplicate issuer"));
        let ignore = "{issuer_url: https://a, audience: x, providers: \
                      [{issuer_url: https://b, audience: y, ignore_issuer: true}]}";
        assert!(problem(ignore).contains("ignore_issuer"));
        assert_eq!(config(ignore).providers().len(), 2);
        assert_eq!(config("{}").attribute, "authorization");
    }

    #[test]
    fn jwks_keeps_the_keys_go_oidc_keeps() {
        // An RSA key (n, e from RFC 7517's example), one with an unknown alg, an HMAC secret.
        let jwks = br#"{"keys": [
            {"kty": "RSA", "kid": "one", "alg": "RS256", "e": "AQAB",
             "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"},
            {"kty": "RSA", "kid": "two", "alg": "RSA-OAEP", "e": "AQAB", "n": "AQAB"},
            {"kty": "oct", "kid": "three", "k": "c2VjcmV0"}
        ]}"#;
        let keys = parse_jwks(jwks).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid.as_deref(), Some("one"));
        assert_eq!(keys[0].algorithms, [Algorithm::RS256]);
    }

    #[test]
    fn header_format_and_unsupported_algorithms() {
        let verifier = Verifier {
            attribute: "authorization".into(),
            providers: Vec::new(),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let check = |value: Option<&str>| {
            let mut headers = http::HeaderMap::new();
            if let Some(value) = value {
                headers.insert(http::header::AUTHORIZATION, value.parse().unwrap());
            }
            runtime
                .block_on(verifier.check(&headers))
                .unwrap_err()
                .message
        };
        assert_eq!(check(None), "authentication didn't succeed");
        assert_eq!(check(Some("Bearer")), "invalid authorization header format");
        assert_eq!(
            check(Some("Bearer  two")),
            "invalid authorization header format"
        );
        // {"alg":"HS256"}.{"iss":"x"}.sig: a shared-secret token is malformed for go-oidc.
        let hs256 = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln";
        assert!(check(Some(hs256)).starts_with("failed to parse the token"));
    }
}
