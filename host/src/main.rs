//! The `trailhead` command: `run` a gateway, or `validate` a config without starting one.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use trailhead::components::{Config, LogEncoding};
use trailhead::service::Service;

// prost allocates many times per decoded span, where mimalloc beats glibc (BENCHMARKS.md).
// Counted, so the memory limiter sees the heap in use.
#[global_allocator]
static ALLOCATOR: trailhead::telemetry::heap::Counting<mimalloc::MiMalloc> =
    trailhead::telemetry::heap::Counting(mimalloc::MiMalloc);

#[derive(Parser)]
#[command(
    name = "trailhead",
    version,
    about = "A telemetry gateway with hot-swappable WebAssembly processors"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the embedded default config when no --config is given).
    Run {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Check a config and report every problem with file:line:column; starts nothing.
    Validate {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Work with a plugin component outside any pipeline.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Stream live data at one point of a running trailhead's pipeline, a JSON line per batch:
    /// what the exporters get, or what goes into (--before) or comes out of (--after) a processor.
    Tap {
        pipeline: String,
        #[arg(long, conflicts_with = "after")]
        before: Option<String>,
        #[arg(long)]
        after: Option<String>,
        /// The admin (metrics) address; read from --config when given.
        #[arg(long, default_value = "127.0.0.1:8888")]
        address: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Stop after this many batches.
        #[arg(long)]
        count: Option<usize>,
    },
    /// Internal: compile the component on stdin for this build's engine, artifact to stdout.
    #[command(hide = true)]
    CompileComponent,
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Start a new Rust plugin crate from the template.
    New {
        name: String,
        /// Where to create it (a folder named NAME inside).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Depend on this trailhead-plugin SDK crate instead of writing the one embedded in
        /// this binary into the new crate.
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Load a component as trailhead would (sandbox, WIT, init, canary) and print what it is.
    Check {
        file: PathBuf,
        /// The processor entry's settings: a YAML or JSON file, or inline JSON.
        #[arg(long, short)]
        config: Option<String>,
    },
    /// Compile components ahead of time into the compiled-component cache (for an image build),
    /// checking each against the contract.
    Compile {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The cache directory (default: $TRAILHEAD_PLUGIN_CACHE, as `run` reads it).
        #[arg(long)]
        cache: Option<PathBuf>,
    },
    /// Run a component on an OTLP/JSON request and print the result as OTLP/JSON.
    Test {
        file: PathBuf,
        /// The processor entry's settings: a YAML or JSON file, or inline JSON.
        #[arg(long, short)]
        config: Option<String>,
        /// An OTLP/JSON export request (traces, metrics or logs).
        #[arg(long, short)]
        input: PathBuf,
    },
}

fn plugin_command(command: PluginCommand) -> Result<String, String> {
    use trailhead::processors::offline;
    let read = |path: &PathBuf| {
        std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
    };
    let settings = |config: &Option<String>| match config {
        None => Ok(String::new()),
        Some(inline) if inline.trim_start().starts_with('{') => Ok(inline.clone()),
        Some(file) => read(&PathBuf::from(file)),
    };
    match command {
        PluginCommand::New { name, dir, sdk } => offline::new_plugin(&dir, &name, sdk.as_deref()),
        PluginCommand::Check { file, config } => offline::check(&file, &settings(&config)?),
        PluginCommand::Compile { files, cache } => {
            let cache = cache
                .or_else(trailhead::processors::wasm::cache::from_env)
                .ok_or("give --cache DIR, or set TRAILHEAD_PLUGIN_CACHE")?;
            offline::compile(&files, &cache)
        }
        PluginCommand::Test {
            file,
            config,
            input,
        } => offline::test(&file, &settings(&config)?, &read(&input)?),
    }
}

fn load(path: Option<&PathBuf>) -> Result<Config, trailhead::config::ConfigError> {
    match path {
        Some(path) => Config::load(path),
        None => Config::default_config(),
    }
}

/// `compile-component`: stdin's component compiled for this build's engine, to stdout.
fn compile_component() -> Result<(), String> {
    use std::io::{Read, Write};
    let mut wasm = Vec::new();
    std::io::stdin()
        .read_to_end(&mut wasm)
        .map_err(|e| format!("reading the component: {e}"))?;
    let artifact = trailhead::processors::wasm::precompile(&wasm).map_err(|e| format!("{e:#}"))?;
    std::io::stdout()
        .write_all(&artifact)
        .map_err(|e| format!("writing the compiled component: {e}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let done = match cli.command.unwrap_or(Command::Run { config: None }) {
        Command::CompileComponent => compile_component().map(|()| ExitCode::SUCCESS),
        Command::Tap {
            pipeline,
            before,
            after,
            address,
            config,
            count,
        } => tap(&pipeline, before, after, address, config, count),
        Command::Plugin { command } => plugin_command(command).and_then(print),
        Command::Validate { config } => validate(&config),
        Command::Run { config } => run_command(config.as_ref()),
    };
    done.unwrap_or_else(|e| {
        eprintln!("{e}");
        ExitCode::FAILURE
    })
}

/// `tap`: what passes a pipeline's processors, from a running trailhead's admin address (or the
/// one a config gives).
fn tap(
    pipeline: &str,
    before: Option<String>,
    after: Option<String>,
    address: String,
    config: Option<PathBuf>,
    count: Option<usize>,
) -> Result<ExitCode, String> {
    let address = match config.as_ref().map(|c| Config::load(c)) {
        None => address,
        Some(Ok(config)) => config.service.telemetry.metrics.address.to_string(),
        Some(Err(e)) => return Err(e.to_string()),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let tapped = runtime.block_on(trailhead::service::tap::run_client(
        &address,
        pipeline,
        before.as_deref(),
        after.as_deref(),
        count,
    ));
    tapped
        .map(|()| ExitCode::SUCCESS)
        .map_err(|e| format!("{e:#}"))
}

/// Writes a command's output. `println!` panics on a closed pipe (`| head`); a CLI stops
/// quietly there.
fn print(text: String) -> Result<ExitCode, String> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{}", text.trim_end()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(format!("cannot write the output: {e}"))
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// `validate`: the config parses and wires up, and the start plan builds: its plugins load,
/// the Kubernetes cache and memory limiter settings are accepted.
fn validate(path: &PathBuf) -> Result<ExitCode, String> {
    use trailhead::service::{Plan, StartError};
    let loaded = load(Some(path)).map_err(|e| e.to_string())?;
    for name in &loaded.unset_env {
        eprintln!(
            "warning: {}: `{name}` is unset; it expands to an empty value",
            path.display()
        );
    }
    Plan::new(&loaded, &std::sync::Arc::default()).map_err(|e| match e {
        StartError::Processor(diagnostic) => diagnostic.to_string(),
        other => format!("{}: {other}", path.display()),
    })?;
    print(format!("{}: valid", path.display()))
}

/// `run`: trailhead until SIGTERM; exit 3 when the shutdown deadline dropped data.
fn run_command(path: Option<&PathBuf>) -> Result<ExitCode, String> {
    let config = load(path).map_err(|e| e.to_string())?;
    init_logs(&config);
    config.warn_unset_env();
    if let Ok(exe) = std::env::current_exe() {
        trailhead::processors::wasm::compile_in_child_process(exe);
    }
    Ok(match run(config) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(3),
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "trailhead failed");
            ExitCode::FAILURE
        }
    })
}

/// Logs to stderr, and over OTLP too when `service.telemetry.logs.processors` says so.
fn init_logs(config: &Config) {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let logs = &config.service.telemetry.logs;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(logs.directive().unwrap_or("info")));
    let pushed = config.service.telemetry.push.logs.as_ref();
    let otlp = pushed.map(|b| trailhead::telemetry::logs_export::layer(b.max_queue, b.delay));
    let stderr = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter).with(otlp);
    match logs.encoding {
        LogEncoding::Json => registry.with(stderr.json().flatten_event(true)).init(),
        LogEncoding::Console => registry.with(stderr).init(),
    }
}

#[tokio::main]
async fn run(config: Config) -> anyhow::Result<bool> {
    let _profiler = config
        .service
        .telemetry
        .profiles
        .start()
        .map_err(anyhow::Error::msg)?;
    let service = Service::start(&config).await.context("starting")?;
    tracing::info!(config = %config.source.display(), "trailhead is running");
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let failure = loop {
        tokio::select! {
            failure = service.failed() => break Some(failure),
            _ = term.recv() => {
                tracing::info!("SIGTERM received");
                break None;
            }
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("SIGINT received");
                break None;
            }
            _ = hangup.recv() => {
                tracing::info!("SIGHUP received: reloading the config and plugins");
                service.reload().await;
            }
        }
    };
    let drained = service.shutdown().await;
    match failure {
        // Non-zero, so Kubernetes restarts a process that lost a part of itself.
        Some(failure) => Err(anyhow::anyhow!("{failure}; drained: {drained}")),
        None => Ok(drained),
    }
}
