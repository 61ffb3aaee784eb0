//! Reading an HTTP request body under a size limit that also holds after decompression, so a
//! small gzip bomb cannot expand into gigabytes.

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use std::io::Read;

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("request body expands to more than the limit of {limit} bytes when decompressed")]
    DecompressedTooLarge { limit: usize },
    #[error("request body is not valid {encoding}: {reason}")]
    Corrupt {
        encoding: &'static str,
        reason: String,
    },
    #[error("unsupported Content-Encoding `{0}`: use gzip, zstd, deflate or none")]
    UnsupportedEncoding(String),
    #[error("reading the request body failed: {0}")]
    Read(String),
}

impl BodyError {
    pub fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge { .. } | BodyError::DecompressedTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// Reads the whole body, then decodes its `Content-Encoding`; both stages stop at `limit`.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let raw = Limited::new(body, limit).collect().await.map_err(|e| {
        if e.is::<http_body_util::LengthLimitError>() {
            BodyError::TooLarge { limit }
        } else {
            BodyError::Read(e.to_string())
        }
    })?;
    let raw = raw.to_bytes();
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "" | "identity" => Ok(raw),
        "gzip" | "x-gzip" => inflate("gzip", flate2::read::MultiGzDecoder::new(&raw[..]), limit),
        "deflate" => inflate("deflate", flate2::read::ZlibDecoder::new(&raw[..]), limit),
        "zstd" => {
            let decoder =
                zstd::stream::read::Decoder::new(&raw[..]).map_err(|e| BodyError::Corrupt {
                    encoding: "zstd",
                    reason: e.to_string(),
                })?;
            inflate("zstd", decoder, limit)
        }
        other => Err(BodyError::UnsupportedEncoding(other.to_string())),
    }
}

fn inflate(encoding: &'static str, decoder: impl Read, limit: usize) -> Result<Bytes, BodyError> {
    let mut out = Vec::new();
    // Reading one byte past the limit tells "exactly at the limit" from "over it".
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| BodyError::Corrupt {
            encoding,
            reason: e.to_string(),
        })?;
    if out.len() > limit {
        return Err(BodyError::DecompressedTooLarge { limit });
    }
    Ok(Bytes::from(out))
}

/// The media type of `Content-Type` without parameters, lowercased.
pub fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn headers(encoding: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_ENCODING, encoding.parse().unwrap());
        headers
    }

    // A 10 MiB gzip bomb that compresses to ~10 KiB stops at the limit, not at 10 MiB.
    #[tokio::test]
    async fn gzip_bomb_stops_at_the_limit() {
        let bomb = gzip(&vec![0u8; 10 << 20]);
        assert!(bomb.len() < 64 << 10);
        let err = read_body(&headers("gzip"), Body::from(bomb), 1 << 20)
            .await
            .unwrap_err();
        assert!(
            matches!(err, BodyError::DecompressedTooLarge { .. }),
            "{err}"
        );
        assert_eq!(err.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    // Each supported encoding round-trips; an unknown one is named.
    #[tokio::test]
    async fn encodings() {
        let data = b"hello".repeat(100);
        let got = read_body(&headers("gzip"), Body::from(gzip(&data)), 1 << 20)
            .await
            .unwrap();
        assert_eq!(&got[..], &data[..]);
        let zstd = zstd::encode_all(&data[..], 3).unwrap();
        let got = read_body(&headers("zstd"), Body::from(zstd), 1 << 20)
            .await
            .unwrap();
        assert_eq!(&got[..], &data[..]);
        let mut deflate = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        deflate.write_all(&data).unwrap();
        let got = read_body(
            &headers("deflate"),
            Body::from(deflate.finish().unwrap()),
            1 << 20,
        )
        .await
        .unwrap();
        assert_eq!(&got[..], &data[..]);
        let err = read_body(&headers("br"), Body::from("x"), 10)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("`br`"), "{err}");
        let err = read_body(&headers("gzip"), Body::from("not gzip"), 100)
            .await
            .unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    }

    // A raw body over the limit is refused before decompression.
    #[tokio::test]
    async fn raw_limit() {
        let err = read_body(&HeaderMap::new(), Body::from(vec![1u8; 101]), 100)
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::TooLarge { limit: 100 }));
    }
}
