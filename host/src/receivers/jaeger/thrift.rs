//! Jaeger's thrift IDL (`jaeger.thrift`, `agent.thrift` of jaeger-idl) read into the model of
//! [`super::to_otlp`].
//!
//! The wire protocols are the Apache `thrift` crate's (`TBinaryInputProtocol`,
//! `TCompactInputProtocol`): the project's own Rust library, maintained with the thrift
//! compiler. The compiler itself is not used (no build step needs it): the readers below are
//! what it would generate for these six structs, written against the same protocol traits,
//! reading straight into the model instead of into generated structs first. As the Go code the
//! collector runs, a field of an unexpected type is skipped and a missing required field is an
//! error. Strings and lists are bounded by the size of the input, so a forged length cannot
//! make the reader allocate more than the packet or body holds.

use super::to_otlp::{JaegerBatch, JaegerSpan, Log, Process, SpanRef, Tag, TagValue};
use thrift::protocol::{
    TBinaryInputProtocol, TCompactInputProtocol, TFieldIdentifier, TInputProtocol, TMessageType,
    TType,
};
use thrift::{ProtocolError, ProtocolErrorKind, TConfiguration};

/// Which thrift protocol a UDP port speaks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Protocol {
    Compact,
    Binary,
}

/// Limits from the size of the input: no string or list can be longer than it.
fn limits(len: usize) -> TConfiguration {
    TConfiguration::builder()
        .max_string_size(Some(len))
        .max_container_size(Some(len))
        .max_message_size(Some(len.max(1)))
        .build()
        .unwrap_or_default()
}

/// A `jaeger.Batch` in the binary protocol: the body of `POST /api/traces`.
pub fn read_batch(body: &[u8]) -> Result<JaegerBatch, String> {
    let mut input = TBinaryInputProtocol::with_config(body, false, limits(body.len()));
    batch(&mut input).map_err(describe)
}

/// The thrift crate's errors print their kind only; their message says what was wrong.
fn describe(error: thrift::Error) -> String {
    match &error {
        thrift::Error::Protocol(e) if !e.message.is_empty() => format!("{error}: {}", e.message),
        thrift::Error::Transport(e) if !e.message.is_empty() => format!("{error}: {}", e.message),
        _ => error.to_string(),
    }
}

/// An `Agent.emitBatch` message (one UDP packet): its batch, or `None` when it has none.
pub fn read_agent_message(
    packet: &[u8],
    protocol: Protocol,
) -> Result<Option<JaegerBatch>, String> {
    let read = match protocol {
        Protocol::Compact => agent_message(&mut TCompactInputProtocol::with_config(
            packet,
            limits(packet.len()),
        )),
        Protocol::Binary => agent_message(&mut TBinaryInputProtocol::with_config(
            packet,
            false,
            limits(packet.len()),
        )),
    };
    read.map_err(describe)
}

fn agent_message(input: &mut dyn TInputProtocol) -> thrift::Result<Option<JaegerBatch>> {
    let message = input.read_message_begin()?;
    if !matches!(
        message.message_type,
        TMessageType::OneWay | TMessageType::Call
    ) {
        return Err(invalid(format!(
            "expected an emitBatch call, got a {:?} message",
            message.message_type
        )));
    }
    match message.name.as_str() {
        "emitBatch" => {}
        // The collector's handler for it panics ("unsupported receiver").
        "emitZipkinBatch" => return Err(invalid("emitZipkinBatch is not supported".into())),
        other => return Err(invalid(format!("unknown method `{other}`"))),
    }
    // emitBatch_args { 1: jaeger.Batch batch }
    let mut found = None;
    read_struct(input, |input, field| {
        match (field.id, field.field_type) {
            (Some(1), TType::Struct) => found = Some(batch(input)?),
            (_, other) => input.skip(other)?,
        }
        Ok(())
    })?;
    input.read_message_end()?;
    Ok(found)
}

fn invalid(message: String) -> thrift::Error {
    thrift::Error::Protocol(ProtocolError::new(ProtocolErrorKind::InvalidData, message))
}

fn missing(structure: &str, field: &str) -> thrift::Error {
    invalid(format!("required field {structure}.{field} is not set"))
}

/// Reads one struct, handing each field to `field` (which reads or skips its value).
fn read_struct(
    input: &mut dyn TInputProtocol,
    mut field: impl FnMut(&mut dyn TInputProtocol, TFieldIdentifier) -> thrift::Result<()>,
) -> thrift::Result<()> {
    input.read_struct_begin()?;
    loop {
        let identifier = input.read_field_begin()?;
        if identifier.field_type == TType::Stop {
            break;
        }
        field(input, identifier)?;
        input.read_field_end()?;
    }
    input.read_struct_end()
}

/// Reads a list of structs with `element`; a list of another element type is skipped whole.
fn read_list<T>(
    input: &mut dyn TInputProtocol,
    element: fn(&mut dyn TInputProtocol) -> thrift::Result<T>,
) -> thrift::Result<Option<Vec<T>>> {
    let list = input.read_list_begin()?;
    if list.element_type != TType::Struct {
        for _ in 0..list.size {
            input.skip(list.element_type)?;
        }
        input.read_list_end()?;
        return Ok(None);
    }
    // The size is bounded by the input's length (see `limits`), not trusted for capacity.
    let mut items = Vec::new();
    for _ in 0..list.size {
        items.push(element(input)?);
    }
    input.read_list_end()?;
    Ok(Some(items))
}

/// Reads a value of `expected` type with `read`, or skips a value of any other type.
fn typed<T>(
    input: &mut dyn TInputProtocol,
    actual: TType,
    expected: TType,
    read: impl FnOnce(&mut dyn TInputProtocol) -> thrift::Result<T>,
) -> thrift::Result<Option<T>> {
    if actual == expected {
        read(input).map(Some)
    } else {
        input.skip(actual).map(|()| None)
    }
}

fn batch(input: &mut dyn TInputProtocol) -> thrift::Result<JaegerBatch> {
    let mut process = None;
    let mut spans = None;
    read_struct(input, |input, f| {
        match f.id {
            Some(1) => process = typed(input, f.field_type, TType::Struct, self::process)?,
            Some(2) => {
                if let Some(list) = typed(input, f.field_type, TType::List, |i| read_list(i, span))?
                {
                    spans = Some(list.unwrap_or_default());
                }
            }
            _ => input.skip(f.field_type)?,
        }
        Ok(())
    })?;
    Ok(JaegerBatch {
        process: Some(process.ok_or_else(|| missing("Batch", "process"))?),
        spans: spans.ok_or_else(|| missing("Batch", "spans"))?,
    })
}

fn process(input: &mut dyn TInputProtocol) -> thrift::Result<Process> {
    let mut service_name = None;
    let mut tags = None;
    read_struct(input, |input, f| {
        match f.id {
            Some(1) => {
                service_name = typed(input, f.field_type, TType::String, |i| i.read_string())?
            }
            Some(2) => {
                tags = typed(input, f.field_type, TType::List, |i| read_list(i, tag))?.flatten()
            }
            _ => input.skip(f.field_type)?,
        }
        Ok(())
    })?;
    Ok(Process {
        service_name: service_name.ok_or_else(|| missing("Process", "serviceName"))?,
        tags,
    })
}

fn tag(input: &mut dyn TInputProtocol) -> thrift::Result<Tag> {
    let mut key = None;
    let mut kind = None;
    let (mut text, mut double, mut boolean, mut long, mut binary) = (None, None, None, None, None);
    read_struct(input, |input, f| {
        let t = f.field_type;
        match f.id {
            Some(1) => key = typed(input, t, TType::String, |i| i.read_string())?,
            Some(2) => kind = typed(input, t, TType::I32, |i| i.read_i32())?,
            Some(3) => text = typed(input, t, TType::String, |i| i.read_string())?,
            Some(4) => double = typed(input, t, TType::Double, |i| i.read_double())?,
            Some(5) => boolean = typed(input, t, TType::Bool, |i| i.read_bool())?,
            Some(6) => long = typed(input, t, TType::I64, |i| i.read_i64())?,
            Some(7) => binary = typed(input, t, TType::String, |i| i.read_bytes())?,
            _ => input.skip(t)?,
        }
        Ok(())
    })?;
    let key = key.ok_or_else(|| missing("Tag", "key"))?;
    // TagType { STRING, DOUBLE, BOOL, LONG, BINARY }; an unset optional reads as its zero.
    let value = match kind.ok_or_else(|| missing("Tag", "vType"))? {
        0 => TagValue::Str(text.unwrap_or_default()),
        1 => TagValue::Double(double.unwrap_or_default()),
        2 => TagValue::Bool(boolean.unwrap_or_default()),
        3 => TagValue::Long(long.unwrap_or_default()),
        4 => TagValue::Binary(binary.unwrap_or_default()),
        // What Go's generated `TagType.String()` answers for a value it does not know.
        _ => TagValue::Unknown("<UNSET>".into()),
    };
    Ok(Tag { key, value })
}

fn log(input: &mut dyn TInputProtocol) -> thrift::Result<Log> {
    let mut timestamp = None;
    let mut fields = None;
    read_struct(input, |input, f| {
        match f.id {
            Some(1) => timestamp = typed(input, f.field_type, TType::I64, |i| i.read_i64())?,
            Some(2) => {
                if let Some(list) = typed(input, f.field_type, TType::List, |i| read_list(i, tag))?
                {
                    fields = Some(list.unwrap_or_default());
                }
            }
            _ => input.skip(f.field_type)?,
        }
        Ok(())
    })?;
    Ok(Log {
        time_unix_nano: micros_to_nanos(timestamp.ok_or_else(|| missing("Log", "timestamp"))?),
        fields: fields.ok_or_else(|| missing("Log", "fields"))?,
    })
}

fn span_ref(input: &mut dyn TInputProtocol) -> thrift::Result<SpanRef> {
    let mut ref_type = None;
    let (mut low, mut high, mut span_id) = (None, None, None);
    read_struct(input, |input, f| {
        let t = f.field_type;
        match f.id {
            Some(1) => ref_type = typed(input, t, TType::I32, |i| i.read_i32())?,
            Some(2) => low = typed(input, t, TType::I64, |i| i.read_i64())?,
            Some(3) => high = typed(input, t, TType::I64, |i| i.read_i64())?,
            Some(4) => span_id = typed(input, t, TType::I64, |i| i.read_i64())?,
            _ => input.skip(t)?,
        }
        Ok(())
    })?;
    let need = |v: Option<i64>, name| v.ok_or_else(|| missing("SpanRef", name));
    Ok(SpanRef {
        follows_from: ref_type.ok_or_else(|| missing("SpanRef", "refType"))? != 0,
        trace_id: (
            need(high, "traceIdHigh")? as u64,
            need(low, "traceIdLow")? as u64,
        ),
        span_id: need(span_id, "spanId")? as u64,
    })
}

/// Epoch microseconds to nanoseconds, as the collector converts them (two's complement).
fn micros_to_nanos(micros: i64) -> u64 {
    (micros as u64).wrapping_mul(1000)
}

fn span(input: &mut dyn TInputProtocol) -> thrift::Result<JaegerSpan> {
    let mut ids: [Option<i64>; 4] = [None; 4]; // traceIdLow, traceIdHigh, spanId, parentSpanId
    let (mut name, mut flags, mut start, mut duration) = (None, None, None, None);
    let (mut references, mut tags, mut logs) = (None, None, None);
    read_struct(input, |input, f| {
        let t = f.field_type;
        match f.id {
            Some(id @ 1..=4) => {
                ids[id as usize - 1] = typed(input, t, TType::I64, |i| i.read_i64())?
            }
            Some(5) => name = typed(input, t, TType::String, |i| i.read_string())?,
            Some(6) => {
                references = typed(input, t, TType::List, |i| read_list(i, span_ref))?.flatten()
            }
            Some(7) => flags = typed(input, t, TType::I32, |i| i.read_i32())?,
            Some(8) => start = typed(input, t, TType::I64, |i| i.read_i64())?,
            Some(9) => duration = typed(input, t, TType::I64, |i| i.read_i64())?,
            Some(10) => tags = typed(input, t, TType::List, |i| read_list(i, tag))?.flatten(),
            Some(11) => logs = typed(input, t, TType::List, |i| read_list(i, log))?.flatten(),
            _ => input.skip(t)?,
        }
        Ok(())
    })?;
    let names = ["traceIdLow", "traceIdHigh", "spanId", "parentSpanId"];
    let mut id = [0i64; 4];
    for (at, value) in ids.iter().enumerate() {
        id[at] = value.ok_or_else(|| missing("Span", names[at]))?;
    }
    let name = name.ok_or_else(|| missing("Span", "operationName"))?;
    let flags = flags.ok_or_else(|| missing("Span", "flags"))?;
    let start = start.ok_or_else(|| missing("Span", "startTime"))?;
    let duration = duration.ok_or_else(|| missing("Span", "duration"))?;
    let blank = id == [0; 4]
        && name.is_empty()
        && flags == 0
        && start == 0
        && duration == 0
        && references.is_none()
        && tags.is_none()
        && logs.is_none();
    Ok(JaegerSpan {
        trace_id: (id[1] as u64, id[0] as u64),
        span_id: id[2] as u64,
        parent_span_id: id[3] as u64,
        operation_name: name,
        flags: flags as u32,
        start_unix_nano: micros_to_nanos(start),
        end_unix_nano: micros_to_nanos(start.wrapping_add(duration)),
        references: references.unwrap_or_default(),
        tags: tags.unwrap_or_default(),
        logs: logs.unwrap_or_default(),
        process: None,
        blank,
    })
}
