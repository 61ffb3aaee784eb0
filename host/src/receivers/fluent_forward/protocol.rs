//! The Forward protocol v1's frames (github.com/fluent/fluentd/wiki/Forward-Protocol-Specification-v1):
//! Message `[tag, time, record, option?]`, Forward `[tag, [[time, record], …], option?]`,
//! PackedForward `[tag, entries, option?]` with the entries concatenated in a `str`/`bin`, and
//! CompressedPackedForward, the same gzipped (`option.compressed: gzip`, gzip members may be
//! concatenated). The mode is told by the second element's type, as the collector tells it.
//!
//! A frame is read in place from the connection's buffer with `rmpv`'s `ValueRef` (borrowed
//! strings and bytes, no copy; it allocates no more than a frame holds, whatever lengths a
//! header claims). Until a frame is whole, [`next_frame`] answers `None` and is asked again
//! when more bytes came: the costly part of a frame, PackedForward's entries, is one `bin`
//! skipped in one step, so the re-reads cost little.
//!
//! Bounds trailhead adds (the collector has none): a frame, and a PackedForward's entries
//! after gunzip, of at most [`MAX_FRAME_BYTES`]; nesting at most [`MAX_DEPTH`] deep, so every
//! protobuf reader downstream (prost stops at 100 nested messages) can read what is passed on.
//! A PackedForward whose last entry is cut short is refused whole (the collector sometimes
//! drops that entry and takes the rest).

use super::to_otlp::{TagOrder, log_record};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use rmpv::ValueRef;
use rmpv::decode::{Error as DecodeError, read_value_ref_with_max_depth};
use std::io::Read;

/// The largest frame read, and the largest PackedForward entries after gunzip: fluentd's
/// largest chunk (`chunk_limit_size`) is 8 MiB by default and fluent-bit's smaller.
pub const MAX_FRAME_BYTES: usize = 64 << 20;

/// The deepest nesting of arrays and maps in a frame.
pub const MAX_DEPTH: usize = 32;

/// Why a frame was refused (the connection is then closed, as the collector closes it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FrameError(String);

impl FrameError {
    pub fn new(message: impl Into<String>) -> FrameError {
        FrameError(message.into())
    }
}

/// One frame's log records, and the `chunk` option to acknowledge once they are taken.
#[derive(Debug, Default, PartialEq)]
pub struct Event {
    pub log_records: Vec<LogRecord>,
    /// The chunk id exactly as sent (bytes: the ack echoes it, UTF-8 or not).
    pub chunk: Option<Vec<u8>>,
}

/// The carrier modes, each with what it carries in its second element.
#[derive(Clone, Copy)]
enum Mode<'f> {
    Message,
    Forward(&'f [ValueRef<'f>]),
    PackedForward(&'f [u8]),
}

impl Mode<'_> {
    fn name(&self) -> &'static str {
        match self {
            Mode::Message => "Message",
            Mode::Forward(_) => "Forward",
            Mode::PackedForward(_) => "PackedForward",
        }
    }
}

/// The frame at the start of `buffer` and how many bytes it took; `None` while it is not whole.
pub fn next_frame(buffer: &[u8]) -> Result<Option<(Event, usize)>, FrameError> {
    check_start(buffer)?;
    let mut rest = buffer;
    let frame = match read_value_ref_with_max_depth(&mut rest, MAX_DEPTH) {
        Ok(frame) => frame,
        Err(e) if is_cut_short(&e) => return Ok(None),
        Err(e) => return Err(FrameError::new(format!("unreadable msgpack: {e}"))),
    };
    let used = buffer.len() - rest.len();
    Ok(Some((decode(&frame)?, used)))
}

/// The collector's first look at a frame: a short array whose second byte starts the tag
/// string. Garbage is refused at its first bytes, before any length it claims is waited for.
fn check_start(buffer: &[u8]) -> Result<(), FrameError> {
    if let Some(&first) = buffer.first()
        && !(0x90..=0x9f).contains(&first)
    {
        return Err(FrameError::new(format!(
            "a frame starts with byte 0x{first:02x}, not a msgpack array of up to 15 elements"
        )));
    }
    if let Some(&second) = buffer.get(1)
        && !matches!(second, 0xa0..=0xbf | 0xd9..=0xdb)
    {
        return Err(FrameError::new("the tag (first element) is not a string"));
    }
    Ok(())
}

/// Whether reading stopped only because the bytes ran out.
fn is_cut_short(error: &DecodeError) -> bool {
    match error {
        DecodeError::InvalidMarkerRead(e) | DecodeError::InvalidDataRead(e) => {
            e.kind() == std::io::ErrorKind::UnexpectedEof
        }
        DecodeError::DepthLimitExceeded => false,
    }
}

/// A whole frame as an event.
fn decode(frame: &ValueRef<'_>) -> Result<Event, FrameError> {
    let ValueRef::Array(items) = frame else {
        return Err(FrameError::new("a frame is not an array"));
    };
    let tag = match items.first() {
        Some(ValueRef::String(tag)) => String::from_utf8_lossy(tag.as_bytes()).into_owned(),
        _ => return Err(FrameError::new("the tag (first element) is not a string")),
    };
    // The collector's (and the spec's) way: the second element's type tells the mode.
    let (mode, most) = match items.get(1) {
        Some(ValueRef::Integer(_) | ValueRef::Ext(..)) => (Mode::Message, 4),
        Some(ValueRef::Array(entries)) => (Mode::Forward(entries), 3),
        Some(ValueRef::String(packed)) => (Mode::PackedForward(packed.as_bytes()), 3),
        Some(ValueRef::Binary(packed)) => (Mode::PackedForward(packed), 3),
        _ => {
            return Err(FrameError::new(
                "the second element is not a time, an array or a str/bin: no event mode has it",
            ));
        }
    };
    let fewest = most - 1;
    if !(fewest..=most).contains(&items.len()) {
        return Err(FrameError::new(format!(
            "a {} event has {} elements, not {fewest} or {most}",
            mode.name(),
            items.len()
        )));
    }
    let options = match items.get(most - 1) {
        Some(options) => Options::read(options)?,
        None => Options::default(),
    };
    let log_records = match mode {
        Mode::Message => vec![log_record(&tag, TagOrder::First, &items[1], &items[2])?],
        Mode::Forward(entries) => entries
            .iter()
            .map(|entry| entry_record(&tag, entry))
            .collect::<Result<_, _>>()?,
        Mode::PackedForward(packed) if options.gzip => packed_entries(&tag, &gunzip(packed)?)?,
        Mode::PackedForward(packed) => packed_entries(&tag, packed)?,
    };
    Ok(Event {
        log_records,
        chunk: options.chunk,
    })
}

/// The options map's keys trailhead acts on; others (`size`, …) are read and ignored.
#[derive(Default)]
struct Options {
    chunk: Option<Vec<u8>>,
    gzip: bool,
}

impl Options {
    fn read(options: &ValueRef<'_>) -> Result<Options, FrameError> {
        let ValueRef::Map(pairs) = options else {
            return Err(FrameError::new("the options are not a map"));
        };
        let mut read = Options::default();
        for (key, value) in pairs {
            let ValueRef::String(key) = key else {
                return Err(FrameError::new("an option key is not a string"));
            };
            // A later key replaces an earlier one, as in the collector's Go map.
            match (key.as_bytes(), value) {
                (b"chunk", ValueRef::String(chunk)) => read.chunk = Some(chunk.as_bytes().to_vec()),
                (b"chunk", _) => read.chunk = None,
                (b"compressed", ValueRef::String(how)) => read.gzip = how.as_bytes() == b"gzip",
                (b"compressed", _) => read.gzip = false,
                _ => {}
            }
        }
        Ok(read)
    }
}

/// One `[time, record]` entry of a Forward or PackedForward event.
fn entry_record(tag: &str, entry: &ValueRef<'_>) -> Result<LogRecord, FrameError> {
    match entry {
        ValueRef::Array(pair) if pair.len() == 2 => {
            log_record(tag, TagOrder::Last, &pair[0], &pair[1])
        }
        _ => Err(FrameError::new("an entry is not a [time, record] array")),
    }
}

/// PackedForward's entries: `[time, record]` arrays one after another.
fn packed_entries(tag: &str, mut packed: &[u8]) -> Result<Vec<LogRecord>, FrameError> {
    let mut log_records = Vec::new();
    while !packed.is_empty() {
        let entry = read_value_ref_with_max_depth(&mut packed, MAX_DEPTH).map_err(|e| {
            FrameError::new(format!("entry {} is unreadable: {e}", log_records.len()))
        })?;
        log_records.push(entry_record(tag, &entry)?);
    }
    Ok(log_records)
}

/// CompressedPackedForward's entries, un-gzipped (every member, as Go's reader reads them).
fn gunzip(compressed: &[u8]) -> Result<Vec<u8>, FrameError> {
    let mut entries = Vec::new();
    flate2::read::MultiGzDecoder::new(compressed)
        .take(MAX_FRAME_BYTES as u64 + 1)
        .read_to_end(&mut entries)
        .map_err(|e| FrameError::new(format!("the compressed entries are not gzip: {e}")))?;
    if entries.len() > MAX_FRAME_BYTES {
        return Err(FrameError::new(format!(
            "the compressed entries hold more than {MAX_FRAME_BYTES} bytes"
        )));
    }
    Ok(entries)
}

/// The acknowledgement of `chunk`: `{"ack": chunk}`.
pub fn ack(chunk: &[u8]) -> Vec<u8> {
    let mut message = vec![0x81];
    rmp::encode::write_str(&mut message, "ack").expect("writing to a Vec cannot fail");
    // The chunk id is echoed byte for byte, as a str like the one it came in.
    rmp::encode::write_str_len(&mut message, chunk.len() as u32)
        .expect("writing to a Vec cannot fail");
    message.extend_from_slice(chunk);
    message
}
