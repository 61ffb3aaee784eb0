//! A tonic codec that passes messages through as bytes, so gRPC requests are received and sent
//! still encoded, and the gRPC method paths of the OTLP services.

use super::Signal;
use crate::exporters::Payload;
use bytes::{Buf, BufMut, Bytes};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// The OTLP `Export` method of `signal`'s service.
pub fn export_path(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        Signal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    }
}

/// Encodes and decodes nothing: a message is its bytes. `T` is what is sent: one buffer, or
/// an exporter's [`Payload`] of parts, each written straight into the frame.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec<T = Bytes>(std::marker::PhantomData<T>);

/// What a [`RawCodec`] can send.
pub trait RawMessage: Send + 'static {
    /// Bytes it will write, to size the frame.
    fn encoded_len(&self) -> usize;
    fn write_to(self, dst: &mut EncodeBuf<'_>);
}

impl RawMessage for Bytes {
    fn encoded_len(&self) -> usize {
        Bytes::len(self)
    }
    fn write_to(self, dst: &mut EncodeBuf<'_>) {
        dst.put(self);
    }
}

impl RawMessage for Payload {
    fn encoded_len(&self) -> usize {
        Payload::len(self)
    }
    fn write_to(self, dst: &mut EncodeBuf<'_>) {
        self.parts().iter().for_each(|part| dst.put_slice(part));
    }
}

impl<T: RawMessage> Codec for RawCodec<T> {
    type Encode = T;
    type Decode = Bytes;
    type Encoder = RawCodec<T>;
    type Decoder = RawCodec<T>;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec(std::marker::PhantomData)
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec(std::marker::PhantomData)
    }
}

impl<T: RawMessage> Encoder for RawCodec<T> {
    type Item = T;
    type Error = Status;
    fn encode(&mut self, item: T, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        // One allocation of the frame's size, not a doubling per part.
        dst.reserve(item.encoded_len());
        item.write_to(dst);
        Ok(())
    }
}

impl<T: RawMessage> Decoder for RawCodec<T> {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// `partial_success` of any of the three export responses: they share field numbers
/// (`partial_success` = 1 holding `rejected_<items>` = 1 and `error_message` = 2).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportResponse {
    #[prost(message, optional, tag = "1")]
    pub partial_success: Option<PartialSuccess>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PartialSuccess {
    #[prost(int64, tag = "1")]
    pub rejected: i64,
    #[prost(string, tag = "2")]
    pub error_message: String,
}
