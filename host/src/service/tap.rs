//! `trailhead tap`: live data at one point of a pipeline, streamed from the admin endpoint
//! (`GET /tap?pipeline=P[&before=PROC|&after=PROC]`) as one JSON line per batch, with the batch
//! as OTLP/JSON. Like `/reload`, it answers only connections from this host: it shows the data.

use crate::pdata::json::to_json;
use crate::pipeline::Pipeline;
use crate::pipeline::tap::Point;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The `/tap` route over these pipelines, by id.
pub fn routes(pipelines: BTreeMap<String, Arc<Pipeline>>) -> axum::Router {
    let pipelines = Arc::new(pipelines);
    axum::Router::new()
        .route(
            "/tap",
            axum::routing::get(move |uri: http::Uri| {
                let pipelines = pipelines.clone();
                async move { tap(&pipelines, uri.query().unwrap_or("")) }
            }),
        )
        .layer(axum::middleware::from_fn(super::reload::local_only))
}

fn tap(pipelines: &BTreeMap<String, Arc<Pipeline>>, query: &str) -> Response {
    // Percent-decoded: a processor id's `/` may arrive as `%2F` (the console encodes it).
    let param = |name: &str| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    };
    let refuse = |status, message: String| (status, message + "\n").into_response();
    let Some(id) = param("pipeline") else {
        return refuse(StatusCode::BAD_REQUEST, "give ?pipeline=ID".into());
    };
    let Some(pipeline) = pipelines.get(&id).cloned() else {
        let known: Vec<&str> = pipelines.keys().map(String::as_str).collect();
        return refuse(
            StatusCode::NOT_FOUND,
            format!("no pipeline `{id}`; there are: {}", known.join(", ")),
        );
    };
    let point = match (param("before"), param("after")) {
        (Some(_), Some(_)) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "give before or after, not both".into(),
            );
        }
        (Some(p), None) => Point::Before(p),
        (None, Some(p)) => Point::After(p),
        (None, None) => Point::Exporters,
    };
    if let Point::Before(processor) | Point::After(processor) = &point {
        let listed: Vec<String> = pipeline
            .processors
            .load()
            .iter()
            .map(|p| p.id().to_string())
            .collect();
        if !listed.contains(processor) {
            return refuse(
                StatusCode::NOT_FOUND,
                format!(
                    "pipeline `{id}` has no processor `{processor}`; it runs: [{}]",
                    listed.join(", ")
                ),
            );
        }
    }
    let subscription = pipeline.taps.subscribe(point.clone());
    let header = serde_json::json!({"pipeline": id, "point": point.to_string()});
    let first = futures::stream::once(async move { Ok(line(&header)) });
    let batches = futures::stream::unfold(subscription, move |mut subscription| {
        let (id, point) = (id.clone(), point.to_string());
        async move {
            let batch = subscription.batches.recv().await?;
            let data = to_json(batch.signal, &batch.payload.to_bytes())
                .unwrap_or_else(|e| serde_json::json!({"undecodable": e}));
            let record = serde_json::json!({
                "pipeline": id,
                "point": point,
                "signal": batch.signal.as_str(),
                "items": batch.items,
                "skipped_before": subscription.skipped.swap(0, Ordering::Relaxed),
                "data": data,
            });
            Some((
                Ok::<_, std::convert::Infallible>(line(&record)),
                subscription,
            ))
        }
    });
    let body = axum::body::Body::from_stream(futures::StreamExt::chain(first, batches));
    ([(http::header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
}

fn line(value: &serde_json::Value) -> Bytes {
    let mut text = value.to_string();
    text.push('\n');
    Bytes::from(text)
}

/// The client side: streams the tap at `address` to stdout; stops after `count` batches when
/// given. The first line says what is tapped.
pub async fn run_client(
    address: &str,
    pipeline: &str,
    before: Option<&str>,
    after: Option<&str>,
    count: Option<usize>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    use http_body_util::BodyExt;
    use std::io::Write;
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("pipeline", pipeline);
    if let Some(p) = before {
        query.append_pair("before", p);
    }
    if let Some(p) = after {
        query.append_pair("after", p);
    }
    let query = query.finish();
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .with_context(|| format!("cannot reach trailhead's admin endpoint at {address}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = http::Request::get(format!("/tap?{query}"))
        .header(http::header::HOST, address)
        .body(http_body_util::Empty::<Bytes>::new())?;
    let mut response = sender.send_request(request).await?;
    if !response.status().is_success() {
        let body = response.into_body().collect().await?.to_bytes();
        anyhow::bail!("{}", String::from_utf8_lossy(&body).trim());
    }
    let (mut lines, mut stdout) = (0usize, std::io::stdout().lock());
    while let Some(frame) = response.body_mut().frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        // A reader that has seen enough (`| head`) closes the pipe: that ends the tap quietly.
        match stdout.write_all(&data).and_then(|()| stdout.flush()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            written => written?,
        }
        lines += data.iter().filter(|b| **b == b'\n').count();
        if count.is_some_and(|n| lines > n) {
            break; // the header line, then `count` batches
        }
    }
    Ok(())
}
