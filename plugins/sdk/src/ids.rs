//! Trace and span IDs. The batch returns them packed, one after another in one list (16 bytes
//! per trace ID, 8 per span ID); `TraceId::split` and `SpanId::split` walk such a list.

use std::fmt;

macro_rules! id {
    ($(#[$doc:meta])* $name:ident, $width:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; $width]);

        impl $name {
            /// How many bytes an ID takes in a packed list.
            pub const WIDTH: usize = $width;

            /// The IDs of a packed list, in index order (a short tail is ignored).
            pub fn split(packed: &[u8]) -> impl ExactSizeIterator<Item = $name> + '_ {
                packed.chunks_exact($width).map(|chunk| {
                    $name(chunk.try_into().expect("chunks_exact yields whole IDs"))
                })
            }

            /// Whether the ID is set: the batch reads an absent or malformed one as all zero.
            pub fn is_valid(&self) -> bool {
                self.0 != [0; $width]
            }

            /// The ID's bytes.
            pub fn as_bytes(&self) -> &[u8] {
                &self.0
            }
        }

        /// Lowercase hex, as OTLP/JSON and W3C `traceparent` write it.
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
    };
}

id!(
    /// A 16-byte trace ID.
    TraceId,
    16
);
id!(
    /// An 8-byte span ID.
    SpanId,
    8
);

impl TraceId {
    /// The 56 bits W3C Trace Context Level 2 makes random (the last 7 bytes), as consistent
    /// probability sampling reads them: the same number for every span of a trace.
    pub fn randomness(&self) -> u64 {
        let mut last = [0u8; 8];
        last[1..].copy_from_slice(&self.0[9..]);
        u64::from_be_bytes(last)
    }
}
