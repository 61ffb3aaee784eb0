//! The `file_storage` extension kind: a folder that holds the persistent sending queues of the
//! exporters that name it.

use crate::components::{Build, ExporterConfig, Extension, ExtensionConfig, Kind, StartError};
use crate::config::or_default;
use crate::exporters::{DiskQueue, FileStorageConfig};
use crate::pdata::Signal;
use serde::Deserializer;
use std::sync::Arc;

impl Kind for FileStorageConfig {
    const NAME: &'static str = "file_storage";
    fn parse<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        or_default(d)
    }
}

impl Extension for FileStorageConfig {}

/// Opens the persistent queue of exporter `id` for `signal`, when its config asks for one.
pub fn open_storage(
    build: &Build<'_>,
    exporter: &ExporterConfig,
    id: &str,
    signal: Signal,
) -> Result<Option<Arc<DiskQueue>>, StartError> {
    let Some(queue) = exporter.behaviour().sending_queue() else {
        return Ok(None);
    };
    let Some(ExtensionConfig::FileStorage(storage)) = queue
        .storage
        .as_ref()
        .and_then(|s| build.config.extensions.get(s))
    else {
        return Ok(None); // validation saw to a storage id naming something else
    };
    let failed = |message: String| StartError::Storage {
        id: id.to_string(),
        message,
    };
    let directory = build.resolve_path(&storage.directory);
    if !directory.is_dir() {
        if !storage.create_directory {
            return Err(failed(format!(
                "directory {} does not exist (create it, or set create_directory: true)",
                directory.display()
            )));
        }
        std::fs::create_dir_all(&directory)
            .map_err(|e| failed(format!("cannot create {}: {e}", directory.display())))?;
    }
    let folder = FileStorageConfig::queue_dir(&directory, id, signal.as_str());
    DiskQueue::open(&folder, storage.fsync, queue.disk_limits())
        .map(Some)
        .map_err(|e| failed(e.to_string()))
}
