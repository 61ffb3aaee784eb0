//! The sender's address travels with every batch into the processor slot (Kubernetes
//! enrichment associates pods by it), for OTLP/gRPC, OTLP/HTTP and Zipkin. Clients bind
//! distinct loopback source addresses so the test can tell them apart.

#![allow(clippy::unwrap_used)] // a test: a failed step should fail it loudly
use futures::future::BoxFuture;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio_util::sync::CancellationToken;
use trailhead::exporters::{
    BatchSettings, ExportError, ExporterSpec, Payload, QueueSettings, RetrySettings, SendOutcome,
    Sink, spawn_exporter,
};
use trailhead::pdata::{Batch, RequestContext, Signal};
use trailhead::pipeline::{Fanout, Pipeline, ProcessError, Processed, Processor};
use trailhead::receivers::{self, Consumers};
use trailhead::telemetry::{ReceiverMetrics, Telemetry};

/// Remembers who sent each batch it sees.
#[derive(Default)]
struct PeerRecorder(Mutex<Vec<Seen>>);

/// Receiver id, connection peer, first X-Forwarded-For address.
type Seen = (String, Option<SocketAddr>, Option<Arc<str>>);

impl Processor for PeerRecorder {
    fn id(&self) -> &str {
        "peer-recorder"
    }
    fn process(&self, batch: Batch) -> BoxFuture<'_, Result<Processed, ProcessError>> {
        self.0.lock().unwrap().push((
            batch.context.receiver.to_string(),
            batch.context.peer,
            batch.context.forwarded_for.clone(),
        ));
        Box::pin(async { Ok(Processed::Kept(batch)) })
    }
}

struct Discard;
impl Sink for Discard {
    fn send(&self, _: Payload, _: usize) -> BoxFuture<'_, Result<SendOutcome, ExportError>> {
        Box::pin(async { Ok(SendOutcome::default()) })
    }
}

async fn connect_from(source: &str, to: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(format!("{source}:0").parse().expect("address"))?;
    socket.connect(to).await
}

/// One HTTP/1.1 POST from `source`; returns the status line.
async fn post_from(source: &str, to: SocketAddr, path: &str, body: &[u8]) -> String {
    let mut stream = connect_from(source, to).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response.lines().next().unwrap_or("").to_string()
}

const OTLP_JSON: &[u8] = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"a"}]}]}]}"#;
const ZIPKIN_JSON: &[u8] =
    br#"[{"traceId":"5b8efff798038103d269b633813fc60c","id":"eee19b7ec3c1b174","name":"b"}]"#;

#[tokio::test]
async fn peer_address_reaches_processors() {
    let telemetry = Telemetry::default();
    let spec = ExporterSpec {
        id: "discard".into(),
        signal: Signal::Traces,
        sink: Arc::new(Discard),
        queue: QueueSettings::default(),
        batch: BatchSettings::default().policy().unwrap(),
        retry: RetrySettings::default(),
    };
    let (exporter, _task) = spawn_exporter(
        spec,
        None,
        &telemetry,
        CancellationToken::new(),
        CancellationToken::new(),
    );
    let recorder = Arc::new(PeerRecorder::default());
    let pipeline = Arc::new(Pipeline {
        id: "traces".into(),
        processors: arc_swap::ArcSwap::from_pointee(vec![recorder.clone()]),
        exporters: vec![exporter],
        connectors: Vec::new(),
        taps: Default::default(),
    });
    let consumers = |id: &str| {
        let mut consumers = Consumers::default();
        let metrics = ReceiverMetrics::new(&telemetry.registry, id, Signal::Traces);
        consumers.set(
            Signal::Traces,
            Arc::new(Fanout::new(Signal::Traces, vec![pipeline.clone()], metrics)),
        );
        consumers
    };
    let stop = CancellationToken::new();
    let http_router =
        receivers::otlp::http::router("otlp", &Default::default(), &consumers("otlp"));
    let serve = |name: &str, router| {
        receivers::serve(
            name.into(),
            "127.0.0.1:0",
            router,
            Default::default(),
            &telemetry,
            stop.clone(),
        )
    };
    let http = serve("http", http_router).await.unwrap();
    let zipkin_router =
        receivers::zipkin::router("zipkin", &Default::default(), &consumers("zipkin")).unwrap();
    let zipkin = serve("zipkin", zipkin_router).await.unwrap();
    let mut grpc_config: receivers::otlp::grpc::GrpcConfig = Default::default();
    grpc_config.endpoint = "127.0.0.1:0".into();
    let grpc_router =
        receivers::otlp::grpc::router("otlp/grpc", &grpc_config, &consumers("otlp/grpc"));
    let grpc = serve("grpc", grpc_router).await.unwrap();

    assert!(
        post_from("127.0.0.2", http.address, "/v1/traces", OTLP_JSON)
            .await
            .contains("200")
    );
    assert!(
        post_from("127.0.0.3", zipkin.address, "/api/v2/spans", ZIPKIN_JSON)
            .await
            .contains("202")
    );

    // gRPC over a connection whose source is 127.0.0.4.
    let target = grpc.address;
    let channel = tonic::transport::Endpoint::from_static("http://trailhead.test")
        .connect_with_connector(tower::service_fn(move |_| async move {
            connect_from("127.0.0.4", target)
                .await
                .map(hyper_util::rt::TokioIo::new)
        }))
        .await
        .unwrap();
    let context = RequestContext::internal("client");
    let payload = trailhead::pdata::json::batch_from_json(Signal::Traces, OTLP_JSON, context)
        .unwrap()
        .payload
        .to_bytes();
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    let path =
        http::uri::PathAndQuery::from_static(trailhead::pdata::grpc::export_path(Signal::Traces));
    // A proxy in front would say who the original client was.
    let mut request = tonic::Request::new(payload);
    request
        .metadata_mut()
        .insert("x-forwarded-for", "10.244.1.7, 10.0.0.1".parse().unwrap());
    client
        .unary(request, path, trailhead::pdata::grpc::RawCodec)
        .await
        .unwrap();

    let seen = recorder.0.lock().unwrap().clone();
    let ip = |receiver: &str| {
        seen.iter()
            .find(|(r, _, _)| r == receiver)
            .and_then(|(_, peer, _)| peer.map(|p| p.ip().to_string()))
    };
    assert_eq!(ip("otlp").as_deref(), Some("127.0.0.2"), "{seen:?}");
    assert_eq!(ip("zipkin").as_deref(), Some("127.0.0.3"), "{seen:?}");
    assert_eq!(ip("otlp/grpc").as_deref(), Some("127.0.0.4"), "{seen:?}");
    let forwarded = seen
        .iter()
        .find(|(r, _, _)| r == "otlp/grpc")
        .and_then(|(_, _, f)| f.clone());
    assert_eq!(forwarded.as_deref(), Some("10.244.1.7"), "{seen:?}");
    stop.cancel();
}
