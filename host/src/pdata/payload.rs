//! An encoded export request as a list of byte parts. Protobuf concatenates repeated fields,
//! so parts written one after another are one request: the exporter merges queued requests
//! without copying, and a plugin's resource edit re-encodes the resource alone and shares the
//! untouched scopes with the request it came from.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::sync::Arc;

#[derive(Clone, Debug, Default)]
pub struct Payload(Arc<[Bytes]>);

impl Payload {
    pub fn new(parts: Vec<Bytes>) -> Payload {
        Payload(parts.into())
    }

    pub fn parts(&self) -> &[Bytes] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.iter().map(Bytes::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes in `range` of the joined parts, as slices of the parts (no copy).
    pub fn slice(&self, range: std::ops::Range<usize>) -> Vec<Bytes> {
        let mut slices = Vec::new();
        let mut at = 0;
        for part in self.0.iter() {
            let (start, end) = (at, at + part.len());
            at = end;
            if end <= range.start || part.is_empty() {
                continue;
            }
            if start >= range.end {
                break;
            }
            let from = range.start.saturating_sub(start);
            let to = (range.end - start).min(part.len());
            slices.push(part.slice(from..to));
        }
        slices
    }

    /// The request in one buffer; copies when there is more than one part.
    pub fn to_bytes(&self) -> Bytes {
        match &*self.0 {
            [] => Bytes::new(),
            [one] => one.clone(),
            parts => {
                let mut merged = BytesMut::with_capacity(self.len());
                parts.iter().for_each(|p| merged.extend_from_slice(p));
                merged.freeze()
            }
        }
    }

    /// The parts copied into one vector (what a plugin's `to-otlp` hands over): one copy,
    /// where `to_bytes().to_vec()` makes two.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        self.0.iter().for_each(|p| out.extend_from_slice(p));
        out
    }

    /// Reads the parts as one buffer. A length-delimited field that lies within one part
    /// (as the shared scopes do) is decoded into a `Bytes` without a copy.
    pub fn reader(&self) -> Reader<'_> {
        let mut reader = Reader {
            parts: &self.0,
            index: 0,
            offset: 0,
            remaining: self.len(),
        };
        reader.skip_spent();
        reader
    }
}

impl From<Bytes> for Payload {
    fn from(bytes: Bytes) -> Payload {
        Payload::new(vec![bytes])
    }
}

/// A [`Buf`] over a payload's parts.
pub struct Reader<'a> {
    parts: &'a [Bytes],
    index: usize,
    offset: usize,
    remaining: usize,
}

impl Reader<'_> {
    /// Moves past parts read to their end (and empty ones), so `chunk` is never empty while
    /// bytes remain.
    fn skip_spent(&mut self) {
        while self
            .parts
            .get(self.index)
            .is_some_and(|p| self.offset == p.len())
        {
            self.index += 1;
            self.offset = 0;
        }
    }
}

impl Buf for Reader<'_> {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        self.parts
            .get(self.index)
            .map_or(&[], |p| &p[self.offset..])
    }

    fn advance(&mut self, mut count: usize) {
        assert!(count <= self.remaining, "advance past the end of a payload");
        self.remaining -= count;
        while count > 0 {
            let left = self.parts[self.index].len() - self.offset;
            let step = left.min(count);
            self.offset += step;
            count -= step;
            self.skip_spent();
        }
    }

    fn copy_to_bytes(&mut self, len: usize) -> Bytes {
        let shared = self
            .parts
            .get(self.index)
            .filter(|p| p.len() - self.offset >= len)
            .map(|p| p.slice(self.offset..self.offset + len));
        match shared {
            Some(bytes) => {
                self.advance(len);
                bytes
            }
            None => {
                assert!(len <= self.remaining, "read past the end of a payload");
                let mut copy = BytesMut::with_capacity(len);
                copy.put((&mut *self).take(len));
                copy.freeze()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Parts concatenate in order; one part is not copied.
    #[test]
    fn payload_parts_make_one_request() {
        let one = Payload::from(Bytes::from_static(b"abc"));
        assert_eq!(one.to_bytes().as_ptr(), one.parts()[0].as_ptr());
        let merged = Payload::new(vec![Bytes::from_static(b"ab"), Bytes::from_static(b"cde")]);
        assert_eq!((merged.len(), &merged.to_bytes()[..]), (5, &b"abcde"[..]));
        assert!(Payload::default().is_empty());
    }

    // The reader sees the parts as one buffer, skips empty parts, shares a read that lies
    // within one part and copies one that spans two.
    #[test]
    fn reader_shares_within_a_part_and_copies_across() {
        let parts = vec![
            Bytes::from_static(b"ab"),
            Bytes::new(),
            Bytes::from_static(b"cdef"),
            Bytes::from_static(b"g"),
        ];
        let payload = Payload::new(parts.clone());
        let mut reader = payload.reader();
        assert_eq!(reader.remaining(), 7);
        assert_eq!(reader.get_u8(), b'a');
        let across = reader.copy_to_bytes(2);
        assert_eq!(&across[..], b"bc");
        let within = reader.copy_to_bytes(3);
        assert_eq!(&within[..], b"def");
        assert_eq!(
            within.as_ptr(),
            parts[2][1..].as_ptr(),
            "shared, not copied"
        );
        assert_eq!(reader.chunk(), b"g");
        reader.advance(1);
        assert_eq!((reader.remaining(), reader.chunk()), (0, &b""[..]));
    }
}
