//! Implements the processor world but connects to the network on every batch, so its
//! component imports `wasi:sockets`. trailhead must refuse it at load, naming the import.

use trailhead_plugin_v0_1::{Plugin, PluginError, PluginInfo, Signal, SpanBatch};

struct Sockets;

impl Plugin for Sockets {
    fn init(_config: &str) -> Result<PluginInfo, String> {
        Ok(PluginInfo {
            name: "misfit-sockets".into(),
            version: "0.1.0".into(),
            signals: vec![Signal::Traces],
        })
    }
    fn process_spans(_batch: &SpanBatch) -> Result<(), PluginError> {
        std::net::TcpStream::connect("127.0.0.1:9").map_err(|e| PluginError {
            message: e.to_string(),
        })?;
        Ok(())
    }
}

trailhead_plugin_v0_1::export!(Sockets);
