//! grpc-go's keepalive enforcement policy (`keepalive.enforcement_policy`): a client that pings
//! more often than `min_time` (or at all with no RPC in flight, unless
//! `permit_without_stream`) gets a strike; past two strikes the connection gets GOAWAY
//! ENHANCE_YOUR_CALM with debug data "too_many_pings" and is closed.
//!
//! The idea to understand first: h2 answers client pings itself and tells nobody, so the
//! policy watches the socket instead. [`PingWatch`] wraps a connection's (decrypted) stream,
//! follows the HTTP/2 frame headers going each way (payloads are skipped, never copied), counts
//! the client's PINGs as grpc-go's `handlePing` does, and writes the GOAWAY itself between two
//! of h2's frames before failing the connection. A response sent resets the strikes, as
//! grpc-go's writing headers or data does. An HTTP/1.1 connection is passed through untouched.

use super::keepalive::{Activity, EnforcementPolicy};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// grpc-go's default `min_time`.
const DEFAULT_MIN_TIME: Duration = Duration::from_secs(5 * 60);
/// With no RPC in flight (and `permit_without_stream` off) a ping sooner than this strikes.
const NO_STREAM_PING_TIME: Duration = Duration::from_secs(2 * 60 * 60);
/// Strikes allowed; the next one is a violation (grpc-go's `maxPingStrikes`).
const MAX_PING_STRIKES: u8 = 2;
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
const PING: u8 = 0x6;
const ACK: u8 = 0x1;
const HEADERS: u8 = 0x1;
/// GOAWAY's error code and debug data, as grpc-go sends them.
const ENHANCE_YOUR_CALM: u32 = 0xb;
const DEBUG: &[u8] = b"too_many_pings";

/// The GOAWAY frame: the last stream the client opened may have been processed.
fn goaway_frame(last_stream: u32) -> Vec<u8> {
    let length = (8 + DEBUG.len()) as u32;
    let mut frame = Vec::with_capacity(FRAME_HEADER + 8 + DEBUG.len());
    frame.extend_from_slice(&length.to_be_bytes()[1..]);
    frame.extend_from_slice(&[0x7, 0, 0, 0, 0, 0]);
    frame.extend_from_slice(&last_stream.to_be_bytes());
    frame.extend_from_slice(&ENHANCE_YOUR_CALM.to_be_bytes());
    frame.extend_from_slice(DEBUG);
    frame
}

/// The policy as grpc-go applies it: `min_time` zero is 5m, negative is no minimum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PingPolicy {
    min_time: Duration,
    permit_without_stream: bool,
}

impl PingPolicy {
    pub fn new(policy: &EnforcementPolicy) -> Self {
        let min_time = match policy.min_time {
            t if t.negative => Duration::ZERO,
            t if t.magnitude.is_zero() => DEFAULT_MIN_TIME,
            t => t.magnitude,
        };
        PingPolicy {
            min_time,
            permit_without_stream: policy.permit_without_stream,
        }
    }
}

/// grpc-go's `handlePing` bookkeeping for one connection.
struct Strikes {
    policy: PingPolicy,
    last_ping: Option<Instant>,
    strikes: u8,
}

impl Strikes {
    /// A client ping at `now` with `in_flight` requests; true when it is one too many.
    fn ping(&mut self, now: Instant, in_flight: usize, reset: bool) -> bool {
        let last = self.last_ping.replace(now);
        if reset {
            self.strikes = 0;
            return false;
        }
        let least = if in_flight == 0 && !self.policy.permit_without_stream {
            NO_STREAM_PING_TIME
        } else {
            self.policy.min_time
        };
        if last.is_some_and(|last| now < last + least) {
            self.strikes = self.strikes.saturating_add(1);
        }
        self.strikes > MAX_PING_STRIKES
    }
}

/// Follows HTTP/2 frame boundaries in a byte stream, seeing each frame header once.
#[derive(Clone, Default)]
struct Frames {
    header: [u8; FRAME_HEADER],
    have: usize,
    /// Payload bytes of the current frame still to come.
    skip: usize,
}

impl Frames {
    fn at_boundary(&self) -> bool {
        self.have == 0 && self.skip == 0
    }

    /// Consumes `bytes`, calling `header` for each complete frame header; with `stop`, returns
    /// at the first frame boundary reached after at least one byte. Returns bytes consumed.
    fn consume(&mut self, bytes: &[u8], stop: bool, mut header: impl FnMut(&[u8; 9])) -> usize {
        let mut at = 0;
        while at < bytes.len() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len() - at);
                (at, self.skip) = (at + n, self.skip - n);
            } else {
                let n = (FRAME_HEADER - self.have).min(bytes.len() - at);
                self.header[self.have..self.have + n].copy_from_slice(&bytes[at..at + n]);
                (at, self.have) = (at + n, self.have + n);
                if self.have == FRAME_HEADER {
                    header(&self.header);
                    let h = &self.header;
                    self.skip =
                        usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
                    self.have = 0;
                }
            }
            if stop && self.at_boundary() {
                break;
            }
        }
        at
    }
}

/// What the connection has turned out to speak.
enum Mode {
    /// Bytes of the HTTP/2 preface matched so far.
    Preface(usize),
    Http2,
    Other,
}

/// A connection's stream with the ping policy applied; see the module doc.
pub struct PingWatch<S> {
    inner: S,
    mode: Mode,
    read: Frames,
    write: Frames,
    strikes: Strikes,
    activity: Arc<Activity>,
    /// The highest stream the client opened.
    last_stream: u32,
    /// The GOAWAY to write at the next frame boundary, and how much of it is written.
    goaway: Option<(Vec<u8>, usize)>,
    closed: bool,
}

impl<S> PingWatch<S> {
    pub fn new(inner: S, policy: PingPolicy, activity: Arc<Activity>) -> Self {
        PingWatch {
            inner,
            mode: Mode::Preface(0),
            read: Frames::default(),
            write: Frames::default(),
            strikes: Strikes {
                policy,
                last_ping: None,
                strikes: 0,
            },
            activity,
            last_stream: 0,
            goaway: None,
            closed: false,
        }
    }

    /// Follows what the client sent; a ping too many queues the GOAWAY.
    fn observe_read(&mut self, mut bytes: &[u8]) {
        if let Mode::Preface(matched) = self.mode {
            let n = (PREFACE.len() - matched).min(bytes.len());
            if bytes[..n] != PREFACE[matched..matched + n] {
                self.mode = Mode::Other;
                return;
            }
            bytes = &bytes[n..];
            self.mode = if matched + n == PREFACE.len() {
                Mode::Http2
            } else {
                Mode::Preface(matched + n)
            };
        }
        if !matches!(self.mode, Mode::Http2) {
            return;
        }
        let (strikes, activity) = (&mut self.strikes, &self.activity);
        let (mut violated, mut last_stream) = (false, self.last_stream);
        self.read.consume(bytes, false, |h| {
            if h[3] == HEADERS {
                let id = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
                last_stream = last_stream.max(id);
            }
            if h[3] == PING && h[4] & ACK == 0 {
                let now = Instant::now();
                violated |= strikes.ping(now, activity.in_flight(), activity.take_reset());
            }
        });
        self.last_stream = last_stream;
        if violated && self.goaway.is_none() {
            tracing::info!("client pinged too often: GOAWAY ENHANCE_YOUR_CALM too_many_pings");
            self.goaway = Some((goaway_frame(self.last_stream), 0));
        }
    }
}

fn aborted() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "too_many_pings")
}

impl<S: AsyncWrite + Unpin> PingWatch<S> {
    /// Writes the queued GOAWAY when h2 is between frames; Ready(true) once it is out and the
    /// connection is to be failed, Ready(false) when there is nothing to write yet.
    fn poll_goaway(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        let Some((frame, written)) = &mut self.goaway else {
            return Poll::Ready(Ok(false));
        };
        if !self.write.at_boundary() {
            return Poll::Ready(Ok(false));
        }
        while *written < frame.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &frame[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
        self.closed = true;
        Poll::Ready(Ok(true))
    }

    /// Bytes of `data` h2 may write now: up to the next frame boundary while a GOAWAY waits.
    fn allowed(&self, data: &[u8]) -> usize {
        if self.goaway.is_none() || !matches!(self.mode, Mode::Http2) {
            return data.len();
        }
        self.write.clone().consume(data, true, |_| {})
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for PingWatch<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.closed || ready!(this.poll_goaway(cx))? {
            return Poll::Ready(Err(aborted()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        this.observe_read(&buf.filled()[before..]);
        if this.goaway.is_some() && ready!(this.poll_goaway(cx))? {
            return Poll::Ready(Err(aborted()));
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for PingWatch<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.closed || ready!(this.poll_goaway(cx))? {
            return Poll::Ready(Err(aborted()));
        }
        let allowed = this.allowed(data);
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &data[..allowed]))?;
        if matches!(this.mode, Mode::Http2) {
            this.write.consume(&data[..n], false, |_| {});
        }
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        slices: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.goaway.is_some() || self.closed {
            // Rare: one slice at a time, so the GOAWAY finds its boundary.
            let first = slices
                .iter()
                .find(|s| !s.is_empty())
                .map_or(&[][..], |s| &**s);
            return self.poll_write(cx, first);
        }
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, slices))?;
        if matches!(this.mode, Mode::Http2) {
            let mut left = n;
            for slice in slices {
                let take = left.min(slice.len());
                this.write.consume(&slice[..take], false, |_| {});
                left -= take;
            }
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receivers::keepalive::GoDuration;

    fn policy(min_time: GoDuration, permit_without_stream: bool) -> PingPolicy {
        PingPolicy::new(&EnforcementPolicy {
            min_time,
            permit_without_stream,
        })
    }

    // Zero is grpc-go's 5m; negative is no minimum.
    #[test]
    fn min_time_zero_and_negative() {
        assert_eq!(
            policy(GoDuration::default(), false).min_time,
            DEFAULT_MIN_TIME
        );
        let negative = GoDuration {
            negative: true,
            magnitude: Duration::from_secs(1),
        };
        assert_eq!(policy(negative, false).min_time, Duration::ZERO);
    }

    // As grpc-go: the first ping is free, the third strike is a violation, a response between
    // pings resets them, and with no RPC in flight pings need 2h unless permitted.
    #[test]
    fn strikes_follow_handle_ping() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut s = Strikes {
            policy: policy(GoDuration::from_secs(1), false),
            last_ping: None,
            strikes: 0,
        };
        assert!(!s.ping(at(0), 1, false));
        assert!(!s.ping(at(100), 1, false)); // strike 1
        assert!(!s.ping(at(200), 1, false)); // strike 2
        assert!(!s.ping(at(1300), 1, false)); // a second after: no strike
        assert!(!s.ping(at(1400), 1, true)); // reset by a response
        assert!(!s.ping(at(1500), 1, false));
        assert!(!s.ping(at(1600), 1, false));
        assert!(s.ping(at(1700), 1, false)); // strike 3
        let mut idle = Strikes {
            policy: policy(GoDuration::from_secs(1), false),
            last_ping: None,
            strikes: 0,
        };
        for n in 0..3 {
            assert!(!idle.ping(at(n * 10_000), 0, false));
        }
        assert!(idle.ping(at(30_000), 0, false));
        let mut permitted = Strikes {
            policy: policy(GoDuration::from_secs(1), true),
            last_ping: None,
            strikes: 0,
        };
        for n in 0..10 {
            assert!(!permitted.ping(at(n * 10_000), 0, false));
        }
    }

    // Frame headers are seen once however the bytes are split, and `stop` ends at a boundary.
    #[test]
    fn frames_are_followed_across_reads() {
        let mut stream = Vec::new();
        stream.extend_from_slice(&[0, 0, 3, 0, 0, 0, 0, 0, 1, b'a', b'b', b'c']); // DATA
        stream.extend_from_slice(&[0, 0, 8, PING, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
        for split in 1..stream.len() {
            let (mut frames, mut types) = (Frames::default(), Vec::new());
            for chunk in stream.chunks(split) {
                frames.consume(chunk, false, |h| types.push(h[3]));
            }
            assert_eq!(types, [0, PING]);
            assert!(frames.at_boundary());
        }
        // With `stop`, consuming ends at the first boundary: after the DATA frame.
        let mut frames = Frames::default();
        assert_eq!(frames.consume(&stream, true, |_| {}), 12);
        assert!(frames.at_boundary());
        assert_eq!(frames.consume(&stream[12..14], true, |_| {}), 2);
        assert!(!frames.at_boundary());
        assert_eq!(
            frames.consume(&stream[14..], true, |_| {}),
            stream.len() - 14
        );
    }

    // The GOAWAY is well formed: 22 bytes of payload, type 7 on stream 0, the last stream,
    // ENHANCE_YOUR_CALM and "too_many_pings".
    #[test]
    fn goaway_is_well_formed() {
        let frame = goaway_frame(7);
        assert_eq!(&frame[..9], &[0, 0, 22, 7, 0, 0, 0, 0, 0]);
        assert_eq!(&frame[9..13], &[0, 0, 0, 7]);
        assert_eq!(&frame[13..17], &[0, 0, 0, 0x0b]);
        assert_eq!(&frame[17..], b"too_many_pings");
    }
}
