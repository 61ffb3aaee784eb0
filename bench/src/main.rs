//! trailhead's load generator and counting sink, in one process so one report holds both ends.
//!
//! Open loop by default: requests leave at a fixed rate whatever the system under test does, and
//! each latency is measured from the request's *intended* send time, so a stall shows up as
//! latency instead of silently slowing the generator (no coordinated omission). `--rate 0` is
//! closed loop: `--concurrency` requests always in flight, for saturation. Every span carries
//! its intended send time as its start time, so the sink measures end-to-end latency too.

use anyhow::Context;
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Mutex;
use trailhead::pdata::Signal;
use trailhead::pdata::grpc::{RawCodec, export_path};
use trailhead_bench::{string_kv, traces_request};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Protocol {
    Grpc,
    Http,
    Zipkin,
}

#[derive(Parser, Debug)]
#[command(about = "Load generator + counting OTLP/gRPC sink")]
struct Args {
    #[arg(long, value_enum, default_value = "grpc")]
    protocol: Protocol,
    /// host:port of the system under test.
    #[arg(long)]
    target: String,
    /// Where the counting sink listens (the system under test exports here).
    #[arg(long)]
    sink: String,
    /// Spans per second; 0 = closed loop.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    #[arg(long, default_value_t = 512)]
    spans_per_request: usize,
    #[arg(long, default_value_t = 10)]
    span_attributes: usize,
    #[arg(long, default_value_t = 8)]
    resource_attributes: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Requests in flight in closed loop; the cap on in-flight requests in open loop.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Seconds to wait after the load for the sink to receive everything.
    #[arg(long, default_value_t = 10)]
    drain: u64,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// One request's body for `protocol`, its spans stamped with `sent_ns`.
fn body(args: &Args, sequence: u64, sent_ns: u64) -> Bytes {
    let spans: Vec<Span> = (0..args.spans_per_request)
        .map(|i| {
            let id = sequence * 100_000 + i as u64 + 1;
            Span {
                trace_id: [sequence.to_be_bytes(), id.to_be_bytes()].concat(),
                span_id: id.to_be_bytes().to_vec(),
                name: "GET /api/lessons/{id}".into(),
                kind: 2,
                start_time_unix_nano: sent_ns,
                end_time_unix_nano: sent_ns + 1_000_000,
                attributes: (0..args.span_attributes)
                    .map(|a| string_kv(format!("attribute.{a}"), format!("value-{a}-{}", id % 97)))
                    .collect(),
                ..Default::default()
            }
        })
        .collect();
    match args.protocol {
        Protocol::Grpc | Protocol::Http => {
            let resource = Resource {
                attributes: (0..args.resource_attributes)
                    .map(|a| string_kv(format!("resource.{a}"), format!("lessons-{a}")))
                    .chain([string_kv("service.name", "lessons")])
                    .collect(),
                ..Default::default()
            };
            traces_request(resource, spans)
        }
        Protocol::Zipkin => {
            let zipkin: Vec<serde_json::Value> = spans
                .iter()
                .map(|s| {
                    let tags: serde_json::Map<String, serde_json::Value> = s
                        .attributes
                        .iter()
                        .map(|kv| {
                            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                                Some(any_value::Value::StringValue(v)) => v.clone(),
                                _ => String::new(),
                            };
                            (kv.key.clone(), serde_json::Value::String(value))
                        })
                        .collect();
                    serde_json::json!({
                        "traceId": hex(&s.trace_id), "id": hex(&s.span_id), "name": s.name, "kind": "SERVER",
                        "timestamp": s.start_time_unix_nano / 1000, "duration": 1000,
                        "localEndpoint": {"serviceName": "lessons", "ipv4": "10.244.0.12"}, "tags": tags,
                    })
                })
                .collect();
            Bytes::from(serde_json::to_vec(&zipkin).unwrap_or_default())
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the sink saw: spans, and end-to-end latency per received resource (its first span).
#[derive(Default)]
struct SinkState {
    spans: AtomicU64,
    latencies_ms: Mutex<Vec<f64>>,
}

async fn run_sink(listen: &str, state: Arc<SinkState>) -> anyhow::Result<()> {
    use tonic::server::UnaryService;
    #[derive(Clone)]
    struct Handler(Arc<SinkState>);
    impl UnaryService<Bytes> for Handler {
        type Response = Bytes;
        type Future =
            futures::future::BoxFuture<'static, Result<tonic::Response<Bytes>, tonic::Status>>;
        fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
            let state = self.0.clone();
            Box::pin(async move {
                let received = now_ns();
                let request = ExportTraceServiceRequest::decode(request.into_inner())
                    .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
                let mut latencies = Vec::new();
                for resource in &request.resource_spans {
                    let spans: usize = resource.scope_spans.iter().map(|s| s.spans.len()).sum();
                    state.spans.fetch_add(spans as u64, Ordering::Relaxed);
                    if let Some(first) = resource.scope_spans.first().and_then(|s| s.spans.first())
                    {
                        latencies
                            .push(received.saturating_sub(first.start_time_unix_nano) as f64 / 1e6);
                    }
                }
                state.latencies_ms.lock().await.extend(latencies);
                Ok(tonic::Response::new(Bytes::new()))
            })
        }
    }
    #[derive(Clone)]
    struct Service(Handler);
    impl tower::Service<http::Request<tonic::body::Body>> for Service {
        type Response = http::Response<tonic::body::Body>;
        type Error = std::convert::Infallible;
        type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;
        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
            let handler = self.0.clone();
            Box::pin(async move {
                // Rotel 0.0.1a15 gzips its export whatever its compression flag says.
                let mut grpc = tonic::server::Grpc::new(RawCodec)
                    .max_decoding_message_size(64 << 20)
                    .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
                Ok(grpc.unary(handler, request).await)
            })
        }
    }
    impl tonic::server::NamedService for Service {
        const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("sink on {listen}"))?;
    tonic::transport::Server::builder()
        .add_service(Service(Handler(state)))
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
        .await?;
    Ok(())
}

/// Sends one request; Ok(true) when accepted.
enum Client {
    Grpc(tonic::client::Grpc<tonic::transport::Channel>),
    Http(
        hyper_util::client::legacy::Client<
            hyper_util::client::legacy::connect::HttpConnector,
            http_body_util::Full<Bytes>,
        >,
        String,
        &'static str,
    ),
}

impl Client {
    async fn send(&self, body: Bytes) -> bool {
        match self {
            Client::Grpc(grpc) => {
                let mut grpc = grpc.clone();
                if grpc.ready().await.is_err() {
                    return false;
                }
                let path = http::uri::PathAndQuery::from_static(export_path(Signal::Traces));
                grpc.unary(tonic::Request::new(body), path, RawCodec)
                    .await
                    .is_ok()
            }
            Client::Http(client, url, content_type) => {
                let request = http::Request::post(url.as_str())
                    .header("content-type", *content_type)
                    .body(http_body_util::Full::new(body));
                match request {
                    Ok(request) => client
                        .request(request)
                        .await
                        .is_ok_and(|r| r.status().is_success()),
                    Err(_) => false,
                }
            }
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    let sink = Arc::new(SinkState::default());
    let sink_task = tokio::spawn({
        let (listen, sink) = (args.sink.clone(), sink.clone());
        async move { run_sink(&listen, sink).await }
    });
    let client = Arc::new(match args.protocol {
        Protocol::Grpc => {
            let channel =
                tonic::transport::Endpoint::from_shared(format!("http://{}", args.target))?
                    .connect_lazy();
            Client::Grpc(tonic::client::Grpc::new(channel))
        }
        Protocol::Http | Protocol::Zipkin => {
            let client =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http();
            let (path, content_type) = match args.protocol {
                Protocol::Zipkin => ("/api/v2/spans", "application/json"),
                _ => ("/v1/traces", "application/x-protobuf"),
            };
            Client::Http(
                client,
                format!("http://{}{path}", args.target),
                content_type,
            )
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let sent_requests = Arc::new(AtomicU64::new(0));
    let failed_requests = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let in_flight = Arc::new(tokio::sync::Semaphore::new(args.concurrency.max(1)));
    let started = Instant::now();
    let end = started + Duration::from_secs(args.duration);
    let interval = (args.rate > 0)
        .then(|| Duration::from_secs_f64(args.spans_per_request as f64 / args.rate as f64));
    let mut sequence = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let intended = match interval {
            Some(interval) => started + interval.mul_f64(sequence as f64),
            None => Instant::now(),
        };
        if intended >= end {
            break;
        }
        tokio::time::sleep_until(intended.into()).await;
        let permit = match interval {
            // Open loop never waits for a slot: a full cap counts as a failure at that instant.
            Some(_) => match in_flight.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    failed_requests.fetch_add(1, Ordering::Relaxed);
                    sequence += 1;
                    continue;
                }
            },
            None => in_flight.clone().acquire_owned().await?,
        };
        let intended_ns = now_ns() - intended.elapsed().as_nanos() as u64;
        let payload = body(&args, sequence, intended_ns);
        let (client, sent, failed, latencies) = (
            client.clone(),
            sent_requests.clone(),
            failed_requests.clone(),
            latencies.clone(),
        );
        tasks.spawn(async move {
            let ok = client.send(payload).await;
            let latency_ms = intended.elapsed().as_secs_f64() * 1000.0;
            if ok {
                sent.fetch_add(1, Ordering::Relaxed);
                latencies.lock().await.push(latency_ms);
            } else {
                failed.fetch_add(1, Ordering::Relaxed);
            }
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
        sequence += 1;
    }
    while tasks.join_next().await.is_some() {}
    let load_seconds = started.elapsed().as_secs_f64();
    let sent_spans = sent_requests.load(Ordering::Relaxed) * args.spans_per_request as u64;
    let drain_deadline = Instant::now() + Duration::from_secs(args.drain);
    while sink.spans.load(Ordering::Relaxed) < sent_spans && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut client_ms = latencies.lock().await.clone();
    client_ms.sort_by(f64::total_cmp);
    let mut e2e_ms = sink.latencies_ms.lock().await.clone();
    e2e_ms.sort_by(f64::total_cmp);
    let report = serde_json::json!({
        "sent": sent_spans,
        "received": sink.spans.load(Ordering::Relaxed),
        "failed_requests": failed_requests.load(Ordering::Relaxed),
        "load_seconds": load_seconds,
        "spans_per_s": sent_spans as f64 / load_seconds,
        "client_p50_ms": percentile(&client_ms, 0.5),
        "client_p99_ms": percentile(&client_ms, 0.99),
        "p50_ms": percentile(&e2e_ms, 0.5),
        "p99_ms": percentile(&e2e_ms, 0.99),
    });
    println!("{report}");
    sink_task.abort();
    Ok(())
}
