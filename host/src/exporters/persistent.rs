//! The persistent sending queue (`sending_queue: {storage: file_storage/NAME}`): an append-only
//! log of export requests, so a request a sender was told is accepted survives a crash or
//! `kill -9` and is sent after the restart.
//!
//! One folder per exporter and signal holds `lock` (one process at a time), `cursor` (where the
//! oldest unacknowledged request starts) and segment files `NNNNNNNNNNNNNNNNNNNN.log` of records
//! `[payload length u32][items u32][crc32 of payload u32][payload]`, little-endian. A request is
//! written (and with `fsync`, synced) before its sender gets success. A feeder reads records
//! back in order; each is acknowledged once delivered or refused for good, and the cursor then
//! moves past every acknowledged record at the front, deleting whole segments behind it.
//! Delivery is at least once: a request in flight at a crash is sent again.

use bytes::Bytes;
use serde::Deserialize;
use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

const HEADER: u64 = 12;
/// A segment is closed once it holds this much, so acknowledged data is freed in steps of it.
const SEGMENT_BYTES: u64 = 8 << 20;

/// `extensions: file_storage/NAME:`, where persistent queues keep their data (the collector's
/// keys; `directory` holds one folder per exporter and signal).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileStorageConfig {
    /// Where queues keep their data: one folder per exporter and signal.
    pub directory: PathBuf,
    /// Create `directory` when it is missing; otherwise a missing one stops the start.
    pub create_directory: bool,
    /// Sync every write to the device before answering the sender, so data also survives a
    /// power loss, not only a crash of the process. Off by default, as in the collector.
    pub fsync: bool,
}

impl Default for FileStorageConfig {
    fn default() -> Self {
        FileStorageConfig {
            directory: PathBuf::from("/var/lib/trailhead/file_storage"),
            create_directory: false,
            fsync: false,
        }
    }
}

impl FileStorageConfig {
    /// The folder of one exporter's queue for one signal, e.g. `exporter_otlp_alloy_traces`.
    pub fn queue_dir(directory: &Path, exporter: &str, signal: &str) -> PathBuf {
        let name: String = format!("exporter_{exporter}_{signal}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        directory.join(name)
    }
}

/// Where a record starts or ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Position {
    segment: u64,
    offset: u64,
}

/// How much the queue may hold: requests, and bytes on disk.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub requests: usize,
    pub bytes: u64,
}

/// One exporter's on-disk queue.
pub struct DiskQueue {
    dir: PathBuf,
    fsync: bool,
    limits: Limits,
    state: Mutex<State>,
    /// The segment being appended to; its lock serialises appends.
    writer: Mutex<File>,
    /// The segment the feeder reads, kept open between records.
    reader: Mutex<Option<(u64, File)>>,
    readable: tokio::sync::Notify,
    _lock: File,
}

#[derive(Default)]
struct State {
    /// Requests and bytes written or being written and not yet acknowledged.
    requests: usize,
    bytes: u64,
    /// The end of the last complete record.
    written: Position,
    /// The final length of every closed segment still on disk.
    closed: BTreeMap<u64, u64>,
    /// The next record for the feeder.
    read: Position,
    /// Records handed to the feeder and not yet acknowledged, oldest first.
    unacked: VecDeque<Unacked>,
    cursor: Position,
}

struct Unacked {
    start: Position,
    size: u64,
    done: bool,
}

/// A request read back from disk, to be acknowledged with [`DiskQueue::ack`].
pub struct Stored {
    pub id: RecordId,
    pub payload: Bytes,
    pub items: usize,
}

/// Names a record for its acknowledgement.
#[derive(Clone, Copy, Debug)]
pub struct RecordId(Position);

/// Room claimed for one request; released if it is never written.
pub struct Reservation {
    queue: Arc<DiskQueue>,
    bytes: u64,
    written: bool,
}

/// Why a request could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the persistent queue is full ({0})")]
    Full(String),
    #[error("cannot write to the persistent queue in {dir}: {source}")]
    Io { dir: String, source: io::Error },
}

impl DiskQueue {
    /// Opens (or creates) the queue in `dir`, recovering what an earlier process left: requests
    /// after the cursor are queued again, and a record cut short by a crash is discarded.
    pub fn open(dir: &Path, fsync: bool, limits: Limits) -> io::Result<Arc<DiskQueue>> {
        let context = |what: &str, e: io::Error| {
            io::Error::new(e.kind(), format!("{what} {}: {e}", dir.display()))
        };
        fs::create_dir_all(dir).map_err(|e| context("cannot create", e))?;
        let lock = File::create(dir.join("lock")).map_err(|e| context("cannot lock", e))?;
        lock.try_lock().map_err(|_| {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} is in use by another trailhead process", dir.display()),
            )
        })?;
        let mut segments = list_segments(dir)?;
        let mut cursor = read_cursor(dir)?;
        if cursor.segment == 0 || !segments.contains(&cursor.segment) {
            // No cursor yet, or its segment is gone: start at the oldest segment there is.
            let oldest = segments.iter().copied().find(|s| *s >= cursor.segment);
            cursor = Position {
                segment: oldest.unwrap_or(cursor.segment.max(1)),
                offset: 0,
            };
        }
        for stale in segments.iter().filter(|s| **s < cursor.segment) {
            fs::remove_file(segment_path(dir, *stale))?;
        }
        segments.retain(|s| *s >= cursor.segment);
        if segments.is_empty() {
            segments.push(cursor.segment);
        }
        let mut state = State::default();
        let last = segments[segments.len() - 1];
        for &segment in &segments {
            let start = if segment == cursor.segment {
                cursor.offset
            } else {
                0
            };
            let (start, end, requests, bytes) = scan_segment(&segment_path(dir, segment), start)?;
            if segment == cursor.segment {
                cursor.offset = start;
            }
            state.requests += requests;
            state.bytes += bytes;
            if segment == last {
                state.written = Position {
                    segment,
                    offset: end,
                };
            } else {
                state.closed.insert(segment, end);
            }
        }
        state.cursor = cursor;
        state.read = cursor;
        let mut writer = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(segment_path(dir, last))?;
        // Anything past the last whole record is a write cut short by a crash.
        writer.set_len(state.written.offset)?;
        writer.seek(SeekFrom::Start(state.written.offset))?;
        if state.requests > 0 {
            tracing::info!(dir = %dir.display(), requests = state.requests, bytes = state.bytes, "persistent queue holds requests from before the restart; sending them");
        }
        Ok(Arc::new(DiskQueue {
            dir: dir.to_path_buf(),
            fsync,
            limits,
            state: Mutex::new(state),
            writer: Mutex::new(writer),
            reader: Mutex::new(None),
            readable: tokio::sync::Notify::new(),
            _lock: lock,
        }))
    }

    /// Requests stored and not yet acknowledged.
    pub fn len(&self) -> usize {
        self.state().requests
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.limits.requests
    }

    /// Claims room for a request of `payload_len` bytes, or says the queue is full.
    pub fn try_reserve(self: &Arc<Self>, payload_len: usize) -> Result<Reservation, StoreError> {
        let bytes = HEADER + payload_len as u64;
        let mut state = self.state();
        if state.requests >= self.limits.requests {
            return Err(StoreError::Full(format!(
                "{} requests",
                self.limits.requests
            )));
        }
        if state.bytes + bytes > self.limits.bytes {
            return Err(StoreError::Full(format!("{} bytes", self.limits.bytes)));
        }
        state.requests += 1;
        state.bytes += bytes;
        Ok(Reservation {
            queue: self.clone(),
            bytes,
            written: false,
        })
    }

    /// Appends one request. Blocking: call it off the async executor.
    fn append(&self, payload: &[u8], items: usize) -> Result<(), StoreError> {
        let io_error = |source| StoreError::Io {
            dir: self.dir.display().to_string(),
            source,
        };
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut at = self.state().written;
        if at.offset >= SEGMENT_BYTES {
            if self.fsync {
                writer.sync_data().map_err(io_error)?;
            }
            let next = at.segment + 1;
            *writer = File::create(segment_path(&self.dir, next)).map_err(io_error)?;
            self.state().closed.insert(at.segment, at.offset);
            at = Position {
                segment: next,
                offset: 0,
            };
            self.state().written = at;
        }
        let mut record = Vec::with_capacity(HEADER as usize + payload.len());
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&(items as u32).to_le_bytes());
        record.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        record.extend_from_slice(payload);
        let written = writer.write_all(&record).and_then(|()| {
            if self.fsync {
                writer.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(e) = written {
            // Leave no partial record behind for the reader (best effort: the disk may be full).
            let _ = writer.set_len(at.offset);
            let _ = writer.seek(SeekFrom::Start(at.offset));
            return Err(io_error(e));
        }
        self.state().written.offset = at.offset + record.len() as u64;
        drop(writer);
        self.readable.notify_one();
        Ok(())
    }

    /// The next stored request not yet handed out, waiting for one. Returns `None` once
    /// `stop` is cancelled and everything stored has been handed out.
    pub async fn next(
        self: &Arc<Self>,
        stop: &tokio_util::sync::CancellationToken,
    ) -> Option<io::Result<Stored>> {
        loop {
            let readable = self.readable.notified();
            let queue = self.clone();
            match tokio::task::spawn_blocking(move || queue.read_next()).await {
                Ok(Ok(Some(stored))) => return Some(Ok(stored)),
                Ok(Ok(None)) if stop.is_cancelled() => return None,
                Ok(Ok(None)) => tokio::select! {
                    () = readable => {}
                    () = stop.cancelled() => {}
                },
                Ok(Err(e)) => return Some(Err(e)),
                Err(e) => return Some(Err(io::Error::other(e))),
            }
        }
    }

    /// Reads the record at the read position, if one is there. Blocking.
    fn read_next(&self) -> io::Result<Option<Stored>> {
        let at = {
            let mut state = self.state();
            loop {
                if state.read >= state.written {
                    return Ok(None);
                }
                match state.closed.get(&state.read.segment) {
                    Some(&end) if state.read.offset >= end => {
                        state.read = Position {
                            segment: state.read.segment + 1,
                            offset: 0,
                        };
                    }
                    _ => break state.read,
                }
            }
        };
        let mut reader = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        let file = match &mut *reader {
            Some((segment, file)) if *segment == at.segment => file,
            open => {
                let file = File::open(segment_path(&self.dir, at.segment))?;
                &mut open.insert((at.segment, file)).1
            }
        };
        file.seek(SeekFrom::Start(at.offset))?;
        let mut header = [0u8; HEADER as usize];
        file.read_exact(&mut header)?;
        let (len, items, crc) = parse_header(&header);
        let mut payload = vec![0u8; len as usize];
        file.read_exact(&mut payload)?;
        let size = HEADER + u64::from(len);
        let mut state = self.state();
        state.read.offset = at.offset + size;
        state.unacked.push_back(Unacked {
            start: at,
            size,
            done: false,
        });
        drop(state);
        if crc32fast::hash(&payload) != crc {
            self.ack(RecordId(at));
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "a stored request in {} is corrupt (checksum mismatch); skipping it",
                    segment_path(&self.dir, at.segment).display()
                ),
            ));
        }
        Ok(Some(Stored {
            id: RecordId(at),
            payload: Bytes::from(payload),
            items: items as usize,
        }))
    }

    /// Marks a record done (delivered, or refused for good). Moves the cursor past every done
    /// record at the front and deletes segments wholly behind it.
    pub fn ack(&self, id: RecordId) {
        let mut state = self.state();
        if let Ok(index) = state.unacked.binary_search_by_key(&id.0, |u| u.start) {
            state.unacked[index].done = true;
        }
        let before = state.cursor;
        while state.unacked.front().is_some_and(|u| u.done) {
            if let Some(done) = state.unacked.pop_front() {
                state.requests -= 1;
                state.bytes -= done.size;
            }
        }
        state.cursor = state.unacked.front().map_or(state.read, |u| u.start);
        if state.cursor == before {
            return;
        }
        if state.cursor == state.written {
            drop(state);
            return self.start_over();
        }
        // Small and rare (once per delivered batch), so done in place rather than on a thread.
        if let Err(e) = write_cursor(&self.dir, state.cursor, self.fsync) {
            tracing::error!(dir = %self.dir.display(), error = %e, "cannot save the persistent queue's cursor; delivered requests may be sent again after a restart");
        }
        let behind: Vec<u64> = state
            .closed
            .range(..state.cursor.segment)
            .map(|(s, _)| *s)
            .collect();
        for segment in behind {
            state.closed.remove(&segment);
            let _ = fs::remove_file(segment_path(&self.dir, segment));
        }
    }

    /// Everything written was delivered: empties the segment being written instead of letting
    /// it grow to its full size first, so a full disk frees up as soon as the queue drains.
    fn start_over(&self) {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut state = self.state();
        if state.cursor != state.written || state.written.offset == 0 {
            return; // an append came in meanwhile
        }
        let start = Position {
            segment: state.written.segment,
            offset: 0,
        };
        // A crash between these steps leaves a cursor past the end, which `open` clamps.
        let emptied = writer
            .set_len(0)
            .and_then(|()| writer.seek(SeekFrom::Start(0)).map(drop))
            .and_then(|()| write_cursor(&self.dir, start, self.fsync));
        if let Err(e) = emptied {
            tracing::error!(dir = %self.dir.display(), error = %e, "cannot empty the persistent queue's segment");
            return;
        }
        for segment in std::mem::take(&mut state.closed).into_keys() {
            let _ = fs::remove_file(segment_path(&self.dir, segment));
        }
        (state.written, state.read, state.cursor) = (start, start, start);
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Reservation {
    /// Stores the request; when this returns `Ok`, it survives a crash of this process.
    pub async fn write(mut self, payload: Bytes, items: usize) -> Result<(), StoreError> {
        let queue = self.queue.clone();
        let result = tokio::task::spawn_blocking(move || queue.append(&payload, items))
            .await
            .unwrap_or_else(|e| {
                Err(StoreError::Io {
                    dir: self.queue.dir.display().to_string(),
                    source: io::Error::other(e),
                })
            });
        self.written = result.is_ok();
        result
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.written {
            let mut state = self.queue.state();
            state.requests -= 1;
            state.bytes -= self.bytes;
        }
    }
}

fn parse_header(header: &[u8; HEADER as usize]) -> (u32, u32, u32) {
    let word =
        |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    (word(0), word(4), word(8))
}

fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:020}.log"))
}

fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut segments: Vec<u64> = fs::read_dir(dir)?
        .filter_map(|entry| {
            let name = entry.ok()?.file_name();
            name.to_str()?.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    segments.sort_unstable();
    Ok(segments)
}

/// Walks a segment's records from `start` (clamped to the file); returns that start, where the
/// last whole record ends, and how many requests and bytes lie between.
fn scan_segment(path: &Path, start: u64) -> io::Result<(u64, u64, usize, u64)> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((0, 0, 0, 0)),
        Err(e) => return Err(e),
    };
    let length = file.metadata()?.len();
    let start = start.min(length);
    let (mut at, mut requests) = (start, 0);
    let mut header = [0u8; HEADER as usize];
    while at + HEADER <= length {
        file.seek(SeekFrom::Start(at))?;
        file.read_exact(&mut header)?;
        let size = HEADER + u64::from(parse_header(&header).0);
        if at + size > length {
            break;
        }
        at += size;
        requests += 1;
    }
    if at != length {
        tracing::warn!(segment = %path.display(), discarded_bytes = length - at, "discarding a request that was being written when trailhead stopped; its sender was not told it was accepted");
    }
    Ok((start, at, requests, at - start))
}

fn read_cursor(dir: &Path) -> io::Result<Position> {
    match fs::read(dir.join("cursor")) {
        Ok(bytes) if bytes.len() == 16 => {
            let word = |i: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&bytes[i..i + 8]);
                u64::from_le_bytes(b)
            };
            Ok(Position {
                segment: word(0),
                offset: word(8),
            })
        }
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is not a trailhead queue cursor",
                dir.join("cursor").display()
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Position::default()),
        Err(e) => Err(e),
    }
}

/// Replaces the cursor file atomically (write, then rename).
fn write_cursor(dir: &Path, cursor: Position, fsync: bool) -> io::Result<()> {
    let temporary = dir.join("cursor.tmp");
    let mut file = File::create(&temporary)?;
    file.write_all(&cursor.segment.to_le_bytes())?;
    file.write_all(&cursor.offset.to_le_bytes())?;
    if fsync {
        file.sync_data()?;
    }
    fs::rename(temporary, dir.join("cursor"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_util::sync::CancellationToken;

    const ROOMY: Limits = Limits {
        requests: 1000,
        bytes: 1 << 30,
    };

    async fn store(queue: &Arc<DiskQueue>, text: &str) {
        let reservation = queue.try_reserve(text.len()).unwrap();
        reservation
            .write(Bytes::copy_from_slice(text.as_bytes()), text.len())
            .await
            .unwrap();
    }

    async fn next(queue: &Arc<DiskQueue>) -> Stored {
        let stop = CancellationToken::new();
        stop.cancel(); // return None instead of waiting when nothing is stored
        queue.next(&stop).await.expect("a stored request").unwrap()
    }

    // What was stored and not acknowledged comes back after a reopen, in order; what was
    // acknowledged does not; a record cut short at the end is discarded.
    #[tokio::test]
    async fn survives_reopen_and_resumes_after_the_cursor() {
        let dir = tempfile::tempdir().unwrap();
        {
            let queue = DiskQueue::open(dir.path(), false, ROOMY).unwrap();
            for text in ["one", "two", "three"] {
                store(&queue, text).await;
            }
            let first = next(&queue).await;
            assert_eq!(&first.payload[..], b"one");
            let second = next(&queue).await;
            queue.ack(second.id); // out of order: the cursor cannot pass "one" yet
            queue.ack(first.id);
            assert_eq!(queue.len(), 1);
        }
        let segment = segment_path(dir.path(), 1);
        let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
        file.write_all(&[200, 0, 0, 0, 1]).unwrap(); // a torn header
        drop(file);
        let queue = DiskQueue::open(dir.path(), false, ROOMY).unwrap();
        assert_eq!(queue.len(), 1);
        assert_eq!(&next(&queue).await.payload[..], b"three");
        let stop = CancellationToken::new();
        stop.cancel();
        assert!(queue.next(&stop).await.is_none());
        store(&queue, "four").await; // appends after the discarded tail
        assert_eq!(&next(&queue).await.payload[..], b"four");
    }

    // Limits refuse instead of growing; an unwritten reservation gives its room back.
    #[tokio::test]
    async fn limits_refuse_and_reservations_are_released() {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            requests: 2,
            bytes: 100,
        };
        let queue = DiskQueue::open(dir.path(), false, limits).unwrap();
        assert!(matches!(queue.try_reserve(200), Err(StoreError::Full(_))));
        let held = queue.try_reserve(10).unwrap();
        store(&queue, "x").await;
        assert!(matches!(queue.try_reserve(1), Err(StoreError::Full(_))));
        drop(held);
        assert!(queue.try_reserve(1).is_ok());
    }

    // Full segments are deleted once everything in them is acknowledged.
    #[tokio::test]
    async fn acknowledged_segments_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let queue = DiskQueue::open(dir.path(), false, ROOMY).unwrap();
        let big = "x".repeat(3 << 20);
        for _ in 0..4 {
            store(&queue, &big).await;
        }
        assert_eq!(list_segments(dir.path()).unwrap(), vec![1, 2]);
        for _ in 0..4 {
            let stored = next(&queue).await;
            queue.ack(stored.id);
        }
        assert_eq!(list_segments(dir.path()).unwrap(), vec![2]);
        assert_eq!(queue.len(), 0);
    }

    // Once everything is delivered the segment is emptied, so disk space comes back at once.
    #[tokio::test]
    async fn a_drained_queue_gives_its_disk_space_back() {
        let dir = tempfile::tempdir().unwrap();
        let queue = DiskQueue::open(dir.path(), false, ROOMY).unwrap();
        store(&queue, "first").await;
        store(&queue, "second").await;
        let (a, b) = (next(&queue).await, next(&queue).await);
        queue.ack(a.id);
        assert!(fs::metadata(segment_path(dir.path(), 1)).unwrap().len() > 0);
        queue.ack(b.id);
        assert_eq!(fs::metadata(segment_path(dir.path(), 1)).unwrap().len(), 0);
        store(&queue, "third").await;
        assert_eq!(&next(&queue).await.payload[..], b"third");
        drop(queue);
        let reopened = DiskQueue::open(dir.path(), false, ROOMY).unwrap();
        assert_eq!(reopened.len(), 1);
    }

    // A second process cannot open the same queue.
    #[test]
    fn one_process_per_folder() {
        let dir = tempfile::tempdir().unwrap();
        let _first = DiskQueue::open(dir.path(), false, ROOMY).unwrap();
        let second = DiskQueue::open(dir.path(), false, ROOMY).err().unwrap();
        assert!(second.to_string().contains("in use"), "{second}");
    }
}
