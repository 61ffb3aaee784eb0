//! `cors:` of an HTTP receiver, answered as the collector's confighttp answers it (it wraps its
//! handler in rs/cors with credentials allowed): a preflight (`OPTIONS` with
//! `Access-Control-Request-Method`) gets 204 with the allowing headers when the origin, method
//! (GET, POST, HEAD) and requested headers are allowed, and 204 without them when not; other
//! requests from an allowed origin get `Access-Control-Allow-Origin` on their response. With
//! no `allowed_origins`, `cors` does nothing, as in the collector.
//!
//! rs/cors wraps confighttp's whole handler, auth included, so a 401 carries the allowing
//! headers too and a browser's script can read why it was refused: receivers' servers apply
//! the policy around their checks (`receivers::server`), not inside the router.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde::Deserialize;
use std::sync::Arc;

/// `cors:`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Origins allowed to send; one `*` in an origin stands for any text
    /// (`https://*.example.com`), and `*` alone for every origin. Matched in any case.
    pub allowed_origins: Vec<String>,
    /// Request headers a browser may send besides the default `Accept`, `Content-Type` and
    /// `X-Requested-With` (which listing any header replaces); `*` allows all.
    pub allowed_headers: Vec<String>,
    /// Response headers a browser's script may read (`Access-Control-Expose-Headers`).
    pub exposed_headers: Vec<String>,
    /// Seconds a browser may cache a preflight answer; 0 sends no `Access-Control-Max-Age`,
    /// a negative value sends 0.
    pub max_age: i64,
}

/// The allowed methods: rs/cors's default, which confighttp keeps.
const METHODS: [&str; 3] = ["GET", "POST", "HEAD"];

/// The settings, normalized once.
pub struct CorsPolicy {
    all_origins: bool,
    origins: Vec<String>,
    /// `prefix*suffix` origins.
    wildcards: Vec<(String, String)>,
    all_headers: bool,
    headers: Vec<String>,
    exposed: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
}

impl CorsConfig {
    /// `router` answering CORS as `cors` says; unchanged without `cors` or allowed origins.
    pub fn wrap(cors: Option<&CorsConfig>, router: axum::Router) -> axum::Router {
        let Some(policy) = cors.and_then(CorsConfig::policy) else {
            return router;
        };
        let policy = Arc::new(policy);
        router.layer(axum::middleware::from_fn(
            move |request: Request, next: Next| {
                let policy = policy.clone();
                async move { policy.answer(request, next).await }
            },
        ))
    }

    /// The policy, or none without allowed origins (then `cors` does nothing).
    pub fn policy(&self) -> Option<CorsPolicy> {
        if self.allowed_origins.is_empty() {
            return None;
        }
        let lower = |list: &[String]| list.iter().map(|s| s.to_ascii_lowercase()).collect();
        let origins: Vec<String> = lower(&self.allowed_origins);
        let (wildcards, plain): (Vec<&String>, Vec<&String>) =
            origins.iter().partition(|o| o.contains('*'));
        let headers: Vec<String> = match self.allowed_headers.is_empty() {
            true => ["accept", "content-type", "x-requested-with"]
                .map(String::from)
                .into(),
            false => lower(&self.allowed_headers),
        };
        let exposed = (!self.exposed_headers.is_empty())
            .then(|| HeaderValue::from_str(&self.exposed_headers.join(", ")).ok())
            .flatten();
        Some(CorsPolicy {
            all_origins: origins.iter().any(|o| o == "*"),
            wildcards: wildcards
                .into_iter()
                .filter_map(|o| o.split_once('*'))
                .map(|(p, s)| (p.to_string(), s.to_string()))
                .collect(),
            origins: plain.into_iter().cloned().collect(),
            all_headers: headers.iter().any(|h| h == "*"),
            headers,
            exposed,
            max_age: match self.max_age {
                0 => None,
                n => Some(HeaderValue::from(n.max(0))),
            },
        })
    }
}

/// What the answer to a request needs from it: its origin, if its method may be allowed.
pub struct Asked(Option<HeaderValue>);

impl CorsPolicy {
    async fn answer(&self, request: Request, next: Next) -> Response {
        if is_preflight(&request) {
            return self.preflight(request.headers());
        }
        let asked = Self::asked(&request);
        let mut response = next.run(request).await;
        self.decorate(asked, &mut response);
        response
    }

    /// What `decorate` will need, read before `request` is consumed.
    pub fn asked<B>(request: &http::Request<B>) -> Asked {
        let allowed = METHODS.contains(&request.method().as_str());
        Asked(
            request
                .headers()
                .get(header::ORIGIN)
                .cloned()
                .filter(|_| allowed),
        )
    }

    /// The headers an answer (served or refused) gets for an allowed origin.
    pub fn decorate(&self, asked: Asked, response: &mut Response) {
        let headers = response.headers_mut();
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        if let Some(origin) = asked.0.filter(|o| self.origin_allowed(o)) {
            self.allow(headers, origin);
            if let Some(exposed) = &self.exposed {
                headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, exposed.clone());
            }
        }
    }

    /// A preflight's answer: 204, with the allowing headers only when all is allowed.
    pub fn preflight(&self, asked: &HeaderMap) -> Response {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        let vary = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";
        headers.insert(header::VARY, HeaderValue::from_static(vary));
        let origin = asked.get(header::ORIGIN).cloned();
        let method = asked.get(header::ACCESS_CONTROL_REQUEST_METHOD).cloned();
        let requested = asked.get_all(header::ACCESS_CONTROL_REQUEST_HEADERS);
        let requested: Vec<&HeaderValue> = requested.iter().collect();
        let allowed = origin.as_ref().is_some_and(|o| self.origin_allowed(o))
            && method
                .as_ref()
                .is_some_and(|m| METHODS.contains(&m.to_str().unwrap_or("")))
            && self.headers_allowed(&requested);
        let (Some(origin), Some(method), true) = (origin, method, allowed) else {
            return response;
        };
        self.allow(headers, origin);
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, method);
        if let Some(first) = requested.first().filter(|v| !v.is_empty()) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, (*first).clone());
        }
        if let Some(max_age) = &self.max_age {
            headers.insert(header::ACCESS_CONTROL_MAX_AGE, max_age.clone());
        }
        response
    }

    /// The origin (or `*` when every origin is allowed) and credentials, as confighttp allows.
    fn allow(&self, headers: &mut HeaderMap, origin: HeaderValue) {
        let origin = match self.all_origins {
            true => HeaderValue::from_static("*"),
            false => origin,
        };
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }

    fn origin_allowed(&self, origin: &HeaderValue) -> bool {
        let origin = origin.to_str().unwrap_or("").to_ascii_lowercase();
        self.all_origins
            || self.origins.contains(&origin)
            || self.wildcards.iter().any(|(prefix, suffix)| {
                origin.len() >= prefix.len() + suffix.len()
                    && origin.starts_with(prefix.as_str())
                    && origin.ends_with(suffix.as_str())
            })
    }

    fn headers_allowed(&self, requested: &[&HeaderValue]) -> bool {
        self.all_headers
            || requested
                .iter()
                .flat_map(|v| v.to_str().unwrap_or("\u{0}").split(','))
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .all(|h| self.headers.contains(&h))
    }
}

/// Whether `request` is a CORS preflight, which the collector answers before authenticating
/// (browsers send no credentials on one).
pub fn is_preflight<B>(request: &http::Request<B>) -> bool {
    request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    fn app(yaml: &str) -> axum::Router {
        let cors: CorsConfig = crate::config::tree::from_str(yaml).unwrap();
        let router = axum::Router::new().route("/v1/traces", axum::routing::any(|| async { "ok" }));
        CorsConfig::wrap(Some(&cors), router)
    }

    async fn send(app: &axum::Router, method: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = http::Request::builder().method(method).uri("/v1/traces");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(axum::body::Body::empty()).unwrap();
        app.clone().oneshot(request).await.unwrap()
    }

    fn get<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
        response.headers().get(name).map(|v| v.to_str().unwrap())
    }

    // A wildcard origin matches any text in its place, in any case; the answer names the
    // origin, the method, the requested headers, credentials and max age.
    #[tokio::test]
    async fn preflight_from_an_allowed_origin() {
        let app = app(
            "allowed_origins: ['https://*.example.com']\nallowed_headers: [Content-Type, X-Tenant]\nmax_age: 7200",
        );
        let asked = [
            ("origin", "https://App.example.com"),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type,x-tenant"),
        ];
        let response = send(&app, "OPTIONS", &asked[..]).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            get(&response, "access-control-allow-origin"),
            Some("https://App.example.com")
        );
        assert_eq!(get(&response, "access-control-allow-methods"), Some("POST"));
        assert_eq!(
            get(&response, "access-control-allow-headers"),
            Some("content-type,x-tenant")
        );
        assert_eq!(
            get(&response, "access-control-allow-credentials"),
            Some("true")
        );
        assert_eq!(get(&response, "access-control-max-age"), Some("7200"));
    }

    // Listing headers replaces the defaults (content-type is then refused, as rs/cors does);
    // an origin or a method not allowed gets 204 without allowing headers.
    #[tokio::test]
    async fn preflight_refusals_allow_nothing() {
        let app = app(
            "allowed_origins: ['https://a.example', '*.b.example']\nallowed_headers: [x-tenant]\nmax_age: -1",
        );
        for asked in [
            [
                ("origin", "https://c.example"),
                ("access-control-request-method", "POST"),
                ("x", ""),
            ],
            [
                ("origin", "https://a.example"),
                ("access-control-request-method", "PUT"),
                ("x", ""),
            ],
            [
                ("origin", "https://a.example"),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "content-type"),
            ],
        ] {
            let response = send(&app, "OPTIONS", &asked).await;
            assert_eq!(response.status(), StatusCode::NO_CONTENT, "{asked:?}");
            assert_eq!(
                get(&response, "access-control-allow-origin"),
                None,
                "{asked:?}"
            );
        }
        let ok = [
            ("origin", "https://x.b.example"),
            ("access-control-request-method", "POST"),
        ];
        let response = send(&app, "OPTIONS", &ok).await;
        assert_eq!(get(&response, "access-control-max-age"), Some("0"));
    }

    // The request itself reaches the handler and carries the origin back; `*` answers `*`.
    #[tokio::test]
    async fn actual_requests_carry_the_origin() {
        let app = app("allowed_origins: ['*']\nexposed_headers: [X-Trace]");
        let response = send(&app, "POST", &[("origin", "https://any.example")]).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(get(&response, "access-control-allow-origin"), Some("*"));
        assert_eq!(
            get(&response, "access-control-expose-headers"),
            Some("X-Trace")
        );
        assert_eq!(get(&response, "vary"), Some("Origin"));
        let without = app_without_origins().await;
        assert_eq!(get(&without, "access-control-allow-origin"), None);
    }

    // `cors` without origins does nothing, as in the collector.
    async fn app_without_origins() -> Response {
        let app = app("allowed_headers: [x-tenant]");
        let asked = [
            ("origin", "https://a.example"),
            ("access-control-request-method", "POST"),
        ];
        send(&app, "OPTIONS", &asked).await
    }
}
