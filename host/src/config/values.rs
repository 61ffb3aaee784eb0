//! Value types shared by component configs: durations ("5s", "250ms") and "present means
//! enabled" sections (`grpc:` with no value turns gRPC on with defaults, as in the collector).

use serde::{Deserialize, Deserializer};
use std::net::SocketAddr;
use std::time::Duration;

/// Parses the collector's duration syntax: a number followed by ns, us, ms, s, m or h;
/// several may be joined ("1m30s").
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().map_err(|_| {
            format!("invalid duration `{text}`: expected a number like 5s or 250ms")
        })?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            unit => {
                return Err(format!(
                    "invalid duration `{text}`: unknown unit `{unit}` (use ns, us, ms, s, m or h)"
                ));
            }
        };
        total += Duration::from_secs_f64(number * seconds_per_unit);
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// A duration as YAML gives it: text ("5s"), or a bare integer, which the collector reads as
/// nanoseconds (so `max_elapsed_time: 0` is zero, as users write it).
#[derive(Deserialize)]
#[serde(untagged)]
enum DurationValue {
    Nanoseconds(i64),
    Text(String),
}

/// `#[serde(deserialize_with)]` for a duration field. A negative one is refused, as the
/// collector refuses it for every duration key trailhead has.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = match DurationValue::deserialize(d)? {
        DurationValue::Nanoseconds(n) if n < 0 => format!("{n}ns"),
        DurationValue::Nanoseconds(n) => return Ok(Duration::from_nanos(n as u64)),
        DurationValue::Text(text) => text,
    };
    if text.trim_start().starts_with('-') {
        return Err(serde::de::Error::custom(format!(
            "negative duration `{text}`: must be zero or more"
        )));
    }
    parse_duration(&text).map_err(serde::de::Error::custom)
}

/// `#[serde(deserialize_with)]` for a duration that may be left out (with `#[serde(default)]`).
pub fn optional_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// `#[serde(deserialize_with)]` for an optional section: present (even empty) means enabled.
pub fn enabled_section<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Some(Option::<T>::deserialize(d)?.unwrap_or_default()))
}

/// A configured TLS version: `Ok(None)` when unset.
pub fn tls_version(
    key: &str,
    value: &Option<String>,
) -> Result<Option<&'static tokio_rustls::rustls::SupportedProtocolVersion>, String> {
    match value.as_deref().unwrap_or("") {
        "" => Ok(None),
        "1.2" => Ok(Some(&tokio_rustls::rustls::version::TLS12)),
        "1.3" => Ok(Some(&tokio_rustls::rustls::version::TLS13)),
        old @ ("1.0" | "1.1") => Err(format!(
            "tls.{key}: TLS {old} is not available: trailhead's TLS (rustls) speaks 1.2 and 1.3 only, and both older versions are deprecated (RFC 8996); use 1.2"
        )),
        other => Err(format!(
            "tls.{key}: unknown TLS version `{other}`: use 1.2 or 1.3"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The collector's spellings parse; a unit typo is named in the error.
    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(
            parse_duration("5 seconds")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_duration("fast").is_err());
    }
}

/// A listening address as Go's `net.Listen` reads it: `host:port`, where an empty host
/// (`:13133`, as the collector's chart writes it) means every interface and `localhost` the
/// loopback one; another name is resolved once, now.
pub fn parse_listen_address(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    let refuse = |why: &str| format!("`{text}` is not a listening address: {why}");
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| refuse("expected host:port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| refuse("the port must be a number from 0 to 65535"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host {
        "" => return Ok(SocketAddr::from(([0, 0, 0, 0], port))),
        "localhost" => return Ok(SocketAddr::from(([127, 0, 0, 1], port))),
        _ => {}
    }
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    use std::net::ToSocketAddrs;
    (host, port)
        .to_socket_addrs()
        .map_err(|e| refuse(&format!("cannot resolve `{host}`: {e}")))?
        .next()
        .ok_or_else(|| refuse(&format!("`{host}` has no address")))
}

/// `#[serde(deserialize_with)]` for a listening address ([`parse_listen_address`]).
pub fn listen_address<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    parse_listen_address(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod listen_address_tests {
    use super::parse_listen_address;

    #[test]
    fn reads_addresses_as_go_does() {
        let read = |t| parse_listen_address(t).map(|a| a.to_string());
        assert_eq!(read(":13133").unwrap(), "0.0.0.0:13133");
        assert_eq!(read("localhost:4317").unwrap(), "127.0.0.1:4317");
        assert_eq!(read("0.0.0.0:0").unwrap(), "0.0.0.0:0");
        assert_eq!(read("[::1]:8888").unwrap(), "[::1]:8888");
        assert!(read("4317").unwrap_err().contains("expected host:port"));
        assert!(
            read(":99999")
                .unwrap_err()
                .contains("port must be a number")
        );
    }
}
