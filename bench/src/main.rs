//! trailhead's load generator and counting sink, in one process so one report holds both ends.
//!
//! Open loop by default: requests leave at a fixed rate whatever the system under test does, and
//! each latency is measured from the request's *intended* send time, so a stall shows up as
//! latency instead of silently slowing the generator (no coordinated omission). `--rate 0` is
//! closed loop: `--concurrency` requests always in flight, for saturation. The first item of
//! every request carries its intended send time as its start time, so the sink measures
//! end-to-end latency too.
//! In closed loop the requests are built once up front, so the generator's own encoding does
//! not cap the rate it can measure; latency is then the client's.
//!
//! The sink counts items of every signal from the encoding (no decode) and can be told to be
//! slow (`--sink-delay-ms`) or to refuse every Nth export with UNAVAILABLE.

use anyhow::Context;
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, metric, number_data_point,
};
use opentelemetry_proto::tonic::trace::v1::{Span, Status};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Mutex;
use trailhead::exporters::Payload;
use trailhead::pdata::Signal;
use trailhead::pdata::grpc::RawCodec;
use trailhead::pdata::wire::{self, Value};
use trailhead_bench::{logs_request, metrics_request, resource, string_kv, traces_request};

// As in trailhead: glibc's malloc maps and unmaps every 150 KB request buffer.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
enum Signals {
    Traces,
    Logs,
    Metrics,
    /// Traces, metrics and logs in turn, one request each.
    Mixed,
}

impl Signals {
    fn of_request(self, sequence: u64) -> Signal {
        match self {
            Signals::Traces => Signal::Traces,
            Signals::Logs => Signal::Logs,
            Signals::Metrics => Signal::Metrics,
            Signals::Mixed => {
                [Signal::Traces, Signal::Metrics, Signal::Logs][sequence as usize % 3]
            }
        }
    }
}

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
    /// Where the counting sink listens (the system under test exports here); a comma-separated
    /// list runs one listener per address, counted together.
    #[arg(long)]
    sink: String,
    /// Spans per second; 0 = closed loop.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// What to send. Log records are 95% DEBUG and 5% INFO (every 20th), for filter scenarios.
    #[arg(long, value_enum, default_value = "traces")]
    signal: Signals,
    /// Items (spans, log records, metric points) per request.
    #[arg(long, default_value_t = 512)]
    spans_per_request: usize,
    #[arg(long, default_value_t = 10)]
    span_attributes: usize,
    /// Pad every item attribute's value to this many bytes (0: short values).
    #[arg(long, default_value_t = 0)]
    attribute_bytes: usize,
    /// The sink waits this long before answering each export.
    #[arg(long, default_value_t = 0)]
    sink_delay_ms: u64,
    /// The sink refuses every Nth export with UNAVAILABLE (0: never).
    #[arg(long, default_value_t = 0)]
    sink_unavailable_every: u64,
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
    /// Spans per trace (1: every span its own trace). Above 1, a request holds whole traces,
    /// every 10th trace ends in an error and trace k lasts (k mod 20) ms: tail sampling's input.
    #[arg(long, default_value_t = 1)]
    spans_per_trace: usize,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// One request's body for `protocol` and `signal`, its items stamped with `sent_ns`.
fn body(args: &Args, signal: Signal, sequence: u64, sent_ns: u64) -> Bytes {
    let attributes = |id: u64| {
        (0..args.span_attributes)
            .map(|a| {
                let mut value = format!("value-{a}-{}", id % 97);
                if args.attribute_bytes > value.len() {
                    value.extend(std::iter::repeat_n('x', args.attribute_bytes - value.len()));
                }
                string_kv(format!("attribute.{a}"), value)
            })
            .collect::<Vec<_>>()
    };
    let ids = (0..args.spans_per_request).map(|i| (i, sequence * 100_000 + i as u64 + 1));
    let resource = resource(
        args.resource_attributes,
        [string_kv("service.name", "lessons")],
    );
    match signal {
        Signal::Profiles => unreachable!("`Signals::of_request` yields no profiles"),
        Signal::Logs => logs_request(
            resource,
            ids.map(|(i, id)| LogRecord {
                time_unix_nano: sent_ns,
                observed_time_unix_nano: sent_ns,
                severity_number: if i % 20 == 0 { 9 } else { 5 },
                severity_text: if i % 20 == 0 { "INFO" } else { "DEBUG" }.into(),
                body: string_kv("", format!("lesson {id} served")).value,
                attributes: attributes(id),
                ..Default::default()
            })
            .collect(),
        ),
        Signal::Metrics => metrics_request(
            resource,
            ids.map(|(i, id)| Metric {
                name: format!("lessons.requests.{}", i % 16),
                data: Some(metric::Data::Gauge(Gauge {
                    data_points: vec![NumberDataPoint {
                        time_unix_nano: sent_ns,
                        attributes: attributes(id),
                        value: Some(number_data_point::Value::AsDouble(i as f64)),
                        ..Default::default()
                    }],
                })),
                ..Default::default()
            })
            .collect(),
        ),
        Signal::Traces => {
            let spans: Vec<Span> = ids
                .map(|(i, id)| {
                    span(
                        args.spans_per_trace,
                        sequence,
                        i,
                        id,
                        sent_ns,
                        attributes(id),
                    )
                })
                .collect();
            match args.protocol {
                Protocol::Zipkin => zipkin(&spans),
                _ => traces_request(resource, spans),
            }
        }
    }
}

/// Span `i` of a request: its own trace, or with `per_trace` > 1 one of a trace's spans (the
/// first is the root) whose status and duration vary by trace, so sampling policies differ.
fn span(
    per_trace: usize,
    sequence: u64,
    i: usize,
    id: u64,
    sent_ns: u64,
    attributes: Vec<KeyValue>,
) -> Span {
    let mut span = Span {
        trace_id: [sequence.to_be_bytes(), id.to_be_bytes()].concat(),
        span_id: id.to_be_bytes().to_vec(),
        name: "GET /api/lessons/{id}".into(),
        kind: 2,
        start_time_unix_nano: sent_ns,
        end_time_unix_nano: sent_ns + 1_000_000,
        attributes,
        ..Default::default()
    };
    if per_trace > 1 {
        let trace = (i / per_trace) as u64;
        let root = id - (i % per_trace) as u64;
        // Prebuilt requests are sent again and again: each send writes its own sequence over
        // the placeholder, so every trace is new (Stamped::at).
        let prefix = if sent_ns == STAMP {
            TRACE_STAMP
        } else {
            sequence
        };
        span.trace_id = [prefix.to_be_bytes(), root.to_be_bytes()].concat();
        if i % per_trace != 0 {
            span.parent_span_id = root.to_be_bytes().to_vec();
        }
        // The first item keeps its send-time placeholder as both times (the sink reads it);
        // the others are timed from now, so a trace lasts (k mod 20) ms.
        let now = if i == 0 { sent_ns } else { now_ns() };
        span.start_time_unix_nano = now;
        span.end_time_unix_nano = if i == 0 {
            now
        } else {
            now + (trace % 20) * 1_000_000
        };
        if trace % 10 == 0 {
            span.status = Some(Status {
                code: 2,
                ..Default::default()
            });
        }
    }
    span
}

fn zipkin(spans: &[Span]) -> Bytes {
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

/// Requests built ahead, cycled through.
const PREBUILT: usize = 12;

/// The placeholder send time of a built request: eight bytes no real field of it holds.
const STAMP: u64 = 0x5a5a_5a5a_5a5a_5a5a;

/// The placeholder of a prebuilt trace ID's first half (`--spans-per-trace`).
const TRACE_STAMP: u64 = 0xa5a5_a5a5_a5a5_a5a5;

/// A built request, where its first item's send time goes, and where its trace IDs' sequence
/// halves go.
struct Stamped {
    body: Bytes,
    offset: Option<usize>,
    traces: Vec<usize>,
}

impl Stamped {
    /// Keeps the placeholder of the request's first item (the one the sink reads) and gives
    /// every other item the build time, so stamping a send touches 8 bytes.
    fn new(body: Bytes) -> Stamped {
        let (pattern, built) = (STAMP.to_le_bytes(), now_ns().to_le_bytes());
        let mut body = body.to_vec();
        let mut offsets = (0..body.len().saturating_sub(7)).filter(|&i| body[i..i + 8] == pattern);
        let offset = offsets.next();
        for i in offsets.collect::<Vec<_>>() {
            body[i..i + 8].copy_from_slice(&built);
        }
        let traces = (0..body.len().saturating_sub(7))
            .filter(|&i| body[i..i + 8] == TRACE_STAMP.to_be_bytes())
            .collect();
        Stamped {
            body: body.into(),
            offset,
            traces,
        }
    }

    /// A copy with its first item stamped `sent_ns` (little-endian fixed64) and its trace IDs
    /// with `sequence`: one buffer, sent in one chunk as an SDK's client sends it.
    fn at(&self, sent_ns: u64, sequence: u64) -> Payload {
        let mut copy = self.body.to_vec();
        if let Some(i) = self.offset {
            copy[i..i + 8].copy_from_slice(&sent_ns.to_le_bytes());
        }
        for &i in &self.traces {
            copy[i..i + 8].copy_from_slice(&sequence.to_be_bytes());
        }
        Payload::new(vec![copy.into()])
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the sink saw: items, and end-to-end latency per received resource (its first span
/// or log record).
#[derive(Default)]
struct SinkState {
    spans: AtomicU64,
    exports: AtomicU64,
    latencies_ms: Mutex<Vec<f64>>,
}

/// The length-delimited fields `number` of a message (its sub-messages there).
fn messages(bytes: &[u8], number: u64) -> impl Iterator<Item = &[u8]> {
    wire::fields(bytes).filter_map(move |(n, v, _)| match v {
        Value::Bytes(b) if n == number => Some(b),
        _ => None,
    })
}

/// The first length-delimited field `number` of a message.
fn first(bytes: &[u8], number: u64) -> Option<&[u8]> {
    messages(bytes, number).next()
}

/// The sink checks the framing of every export's every field only this often: at 1M spans a
/// second the full check alone would take a third of the generator's core. The others are
/// counted by their item fields (resource 1 → scope 2 → item 2), which a miscount still shows.
const FULL_CHECK_EVERY: u64 = 16;

/// Spans or log records of an export, counted by field numbers alone.
fn item_fields(request: &[u8]) -> usize {
    messages(request, 1)
        .flat_map(|resource| messages(resource, 2))
        .map(|scope| messages(scope, 2).count())
        .sum()
}

/// The time field of the first item of every resource: a span's start (field 7) or a log
/// record's time (field 1), read from the encoding.
fn first_item_times(signal: Signal, request: &[u8]) -> Vec<u64> {
    let field = match signal {
        Signal::Traces => 7,
        Signal::Logs => 1,
        Signal::Metrics | Signal::Profiles => return Vec::new(),
    };
    wire::fields(request)
        .filter_map(|(n, v, _)| match v {
            Value::Bytes(resource) if n == 1 => {
                first(resource, 2).and_then(|scope| first(scope, 2))
            }
            _ => None,
        })
        .filter_map(|item| match wire::last(item, field) {
            Some(Value::Fixed64(t)) => Some(t),
            _ => None,
        })
        .collect()
}

struct Sink {
    state: Arc<SinkState>,
    delay: Duration,
    unavailable_every: u64,
}

async fn run_sink(listen: &str, sink: Arc<Sink>) -> anyhow::Result<()> {
    use tonic::server::UnaryService;
    #[derive(Clone)]
    struct Handler(Arc<Sink>, Signal);
    impl UnaryService<Bytes> for Handler {
        type Response = Bytes;
        type Future =
            futures::future::BoxFuture<'static, Result<tonic::Response<Bytes>, tonic::Status>>;
        fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
            let (sink, signal) = (self.0.clone(), self.1);
            Box::pin(async move {
                let received = now_ns();
                let payload = request.into_inner();
                tokio::time::sleep(sink.delay).await;
                let n = sink.state.exports.fetch_add(1, Ordering::Relaxed) + 1;
                if sink.unavailable_every > 0 && n % sink.unavailable_every == 0 {
                    return Err(tonic::Status::unavailable(
                        "the bench sink refuses this one",
                    ));
                }
                let items = match signal {
                    Signal::Traces | Signal::Logs if n % FULL_CHECK_EVERY != 0 => {
                        item_fields(&payload)
                    }
                    _ => wire::count_items(signal, &payload)
                        .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?,
                };
                sink.state.spans.fetch_add(items as u64, Ordering::Relaxed);
                let latencies = first_item_times(signal, &payload)
                    .into_iter()
                    .map(|sent| received.saturating_sub(sent) as f64 / 1e6);
                sink.state.latencies_ms.lock().await.extend(latencies);
                Ok(tonic::Response::new(Bytes::new()))
            })
        }
    }
    #[derive(Clone)]
    struct Service<const S: u8>(Handler);
    impl<const S: u8> tower::Service<http::Request<tonic::body::Body>> for Service<S> {
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
                    .max_decoding_message_size(256 << 20)
                    .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
                Ok(grpc.unary(handler, request).await)
            })
        }
    }
    impl tonic::server::NamedService for Service<0> {
        const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    }
    impl tonic::server::NamedService for Service<1> {
        const NAME: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
    }
    impl tonic::server::NamedService for Service<2> {
        const NAME: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("sink on {listen}"))?;
    tonic::transport::Server::builder()
        .add_service(Service::<0>(Handler(sink.clone(), Signal::Traces)))
        .add_service(Service::<1>(Handler(sink.clone(), Signal::Logs)))
        .add_service(Service::<2>(Handler(sink, Signal::Metrics)))
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
        .await?;
    Ok(())
}

/// Whether the first failed request's error was printed (to stderr: stdout is the report).
static FAILURE_SHOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sends one request; Ok(true) when accepted.
enum Client {
    /// trailhead's own OTLP exporter sink per signal: it hands the request to h2 without
    /// tonic's copy, so the generator's cost per span stays well below the gateway's.
    Grpc(Vec<(Signal, Arc<dyn trailhead::exporters::Sink>)>),
    /// The client, `http://host:port`, and whether it posts Zipkin JSON.
    Http(
        Box<
            hyper_util::client::legacy::Client<
                hyper_util::client::legacy::connect::HttpConnector,
                http_body_util::Full<Bytes>,
            >,
        >,
        String,
        bool,
    ),
}

impl Client {
    fn grpc(target: &str) -> anyhow::Result<Client> {
        let config: trailhead::exporters::otlp::OtlpExporterConfig =
            serde_json::from_value(serde_json::json!({
                "endpoint": target, "tls": {"insecure": true}, "timeout": "60s"
            }))?;
        let sinks = Signal::ALL
            .into_iter()
            .map(|signal| {
                Ok((
                    signal,
                    config
                        .build("load", signal, |p| p.clone(), None, &Default::default())?
                        .sink,
                ))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Client::Grpc(sinks))
    }

    async fn send(&self, signal: Signal, body: Payload) -> bool {
        match self {
            Client::Grpc(sinks) => match sinks.iter().find(|(s, _)| *s == signal) {
                Some((_, sink)) => match sink.send(body, 0).await {
                    Ok(_) => true,
                    Err(e) => {
                        if !FAILURE_SHOWN.swap(true, Ordering::Relaxed) {
                            eprintln!("first failed request: {e}");
                        }
                        false
                    }
                },
                None => false,
            },
            Client::Http(client, base, zipkin) => {
                let (url, content_type) = match zipkin {
                    true => (format!("{base}/api/v2/spans"), "application/json"),
                    false => (format!("{base}/v1/{signal}"), "application/x-protobuf"),
                };
                let request = http::Request::post(url.as_str())
                    .header("content-type", content_type)
                    .body(http_body_util::Full::new(body.to_bytes()));
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
    let sinks = Arc::new(Sink {
        state: sink.clone(),
        delay: Duration::from_millis(args.sink_delay_ms),
        unavailable_every: args.sink_unavailable_every,
    });
    // Several addresses are several backends (a load balancer's), counted as one sink.
    let sink_tasks: Vec<_> = args
        .sink
        .split(',')
        .map(|listen| {
            let (listen, sinks) = (listen.to_string(), sinks.clone());
            tokio::spawn(async move { run_sink(&listen, sinks).await })
        })
        .collect();
    let client = Arc::new(match args.protocol {
        Protocol::Grpc => Client::grpc(&args.target)?,
        Protocol::Http | Protocol::Zipkin => {
            let client =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http();
            Client::Http(
                Box::new(client),
                format!("http://{}", args.target),
                matches!(args.protocol, Protocol::Zipkin),
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
    // OTLP requests are built once and stamped per send, so the generator's own encoding does
    // not limit the rate it can offer (Zipkin's JSON is built per request).
    let prebuilt: Vec<Stamped> = match args.protocol {
        Protocol::Zipkin => Vec::new(),
        _ => (0..PREBUILT as u64)
            .map(|s| Stamped::new(body(&args, args.signal.of_request(s), s, STAMP)))
            .collect(),
    };
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
        // Only when it is ahead: a timer, even one already due, waits for the next tick of
        // tokio's 1 ms wheel, which capped closed loop at one request a millisecond.
        if intended > Instant::now() {
            tokio::time::sleep_until(intended.into()).await;
        }
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
        let signal = args.signal.of_request(sequence);
        let payload = match prebuilt.get(sequence as usize % PREBUILT) {
            Some(stamped) => stamped.at(intended_ns, sequence),
            None => Payload::new(vec![body(&args, signal, sequence, intended_ns)]),
        };
        let (client, sent, failed, latencies) = (
            client.clone(),
            sent_requests.clone(),
            failed_requests.clone(),
            latencies.clone(),
        );
        tasks.spawn(async move {
            let ok = client.send(signal, payload).await;
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
    sink_tasks.iter().for_each(|task| task.abort());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(signal: &str) -> Args {
        Args::parse_from([
            "trailhead-bench",
            "--target",
            "t",
            "--sink",
            "s",
            "--signal",
            signal,
        ])
    }

    // A stamped send carries its time in the first item only, in one buffer, and counts the
    // same by item fields as by the full check.
    #[test]
    fn stamps_the_first_item_and_counts_by_fields() {
        for (name, signal) in [("traces", Signal::Traces), ("logs", Signal::Logs)] {
            let args = args(name);
            let stamped = Stamped::new(body(&args, signal, 3, STAMP));
            let payload = stamped.at(42, 0).to_bytes();
            assert_eq!(first_item_times(signal, &payload), vec![42]);
            assert_eq!(
                payload
                    .windows(8)
                    .filter(|w| *w == STAMP.to_le_bytes())
                    .count(),
                0
            );
            assert_eq!(
                item_fields(&payload),
                wire::count_items(signal, &payload).unwrap()
            );
            assert_eq!(item_fields(&payload), args.spans_per_request);
            assert_eq!(stamped.at(43, 0).parts().len(), 1);
        }
    }

    // With --spans-per-trace, a request holds whole traces, and each send of a prebuilt request
    // gets trace IDs no other send has.
    #[test]
    fn every_send_of_a_prebuilt_request_has_new_traces() {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use prost::Message;
        let mut args = args("traces");
        args.spans_per_trace = 8;
        let stamped = Stamped::new(body(&args, Signal::Traces, 3, STAMP));
        let traces = |sequence| {
            let payload = stamped.at(42, sequence).to_bytes();
            let request = ExportTraceServiceRequest::decode(payload.as_ref()).unwrap();
            let spans = request.resource_spans[0].scope_spans[0].spans.clone();
            spans
                .into_iter()
                .map(|s| s.trace_id)
                .collect::<std::collections::BTreeSet<_>>()
        };
        let (first, second) = (traces(7), traces(8));
        assert_eq!(first.len(), args.spans_per_request / 8);
        assert!(first.is_disjoint(&second));
    }
}
