//! The W3C `tracestate` and its OpenTelemetry member (`ot=th:…;rv:…`), parsed and written back
//! as the collector's `pkg/sampling` does: the same syntax checks and size limits, the same
//! partial result beside an error, and the same order when written (`ot` first, then `rv`,
//! `th` and the other OpenTelemetry values, then the other vendors' members).

use crate::sampling::{Randomness, Threshold};

/// The `ot` member's values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OtelState {
    /// `rv`, as written, and its value.
    pub rv: Option<(String, Randomness)>,
    /// `th`, as written, and its value.
    pub th: Option<(String, Threshold)>,
    pub extra: Vec<(String, String)>,
}

/// A whole trace state: the `ot` member and the others, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TraceState {
    pub ot: OtelState,
    pub extra: Vec<(String, String)>,
}

const MAX_MEMBERS: usize = 32;
const MAX_W3C_LENGTH: usize = 1024;
const MAX_KEY_LENGTH: usize = 256;
const MAX_TENANT_LENGTH: usize = 241;
const MAX_SYSTEM_LENGTH: usize = 14;
const MAX_OTEL_LENGTH: usize = 256;

impl OtelState {
    pub fn threshold(&self) -> Option<Threshold> {
        self.th.as_ref().map(|(_, t)| *t)
    }

    pub fn randomness(&self) -> Option<Randomness> {
        self.rv.as_ref().map(|(_, r)| *r)
    }

    pub fn set_randomness(&mut self, rnd: Randomness) {
        let text = rnd.rvalue();
        self.rv = (!text.is_empty()).then_some((text, rnd));
    }

    pub fn clear_threshold(&mut self) {
        self.th = None;
    }

    /// Raises the threshold to `th`; a lower one than the item already has is refused (its
    /// adjusted count must not fall), and the trace state stays as it was.
    pub fn update_threshold(&mut self, th: Threshold) {
        if let Some((_, existing)) = &self.th
            && *existing > th
        {
            return;
        }
        let text = th.tvalue();
        self.th = (!text.is_empty()).then_some((text, th));
    }

    fn has_any(&self) -> bool {
        self.rv.is_some() || self.th.is_some() || !self.extra.is_empty()
    }

    /// Parses an `ot` member's value; `Err` carries what was read before the error.
    fn parse(input: &str) -> Result<OtelState, OtelState> {
        if input.len() > MAX_OTEL_LENGTH || !valid_otel(input) {
            return Err(OtelState::default());
        }
        let mut state = OtelState::default();
        let mut ok = true;
        for member in input.split(';') {
            let Some((key, value)) = member.split_once(':') else {
                continue;
            };
            match key {
                "rv" => match Randomness::parse(value) {
                    Some(r) => state.rv = Some((value.into(), r)),
                    None => {
                        state.rv = None;
                        ok = false;
                    }
                },
                "th" => match Threshold::parse(value) {
                    Some(t) => state.th = Some((value.into(), t)),
                    None => {
                        state.th = None;
                        ok = false;
                    }
                },
                _ => state.extra.push((key.into(), value.into())),
            }
        }
        if ok { Ok(state) } else { Err(state) }
    }

    fn write(&self, out: &mut String) {
        let mut first = true;
        let mut put = |out: &mut String, key: &str, value: &str| {
            if !first {
                out.push(';');
            }
            first = false;
            out.push_str(key);
            out.push(':');
            out.push_str(value);
        };
        if let Some((rv, _)) = &self.rv {
            put(out, "rv", rv);
        }
        if let Some((th, _)) = &self.th {
            put(out, "th", th);
        }
        for (k, v) in &self.extra {
            put(out, k, v);
        }
    }
}

impl TraceState {
    /// Parses a span's trace state. `Err` carries what was read before the error: the
    /// collector still writes it back in one case (a never-sampling config that fails open).
    pub fn parse(input: &str) -> Result<TraceState, TraceState> {
        let mut state = TraceState::default();
        if input.is_empty() {
            return Ok(state);
        }
        if input.len() > MAX_W3C_LENGTH || !valid_w3c(input) {
            return Err(state);
        }
        let mut ok = true;
        for (n, member) in members(input, ',').enumerate() {
            // The collector counts empty members too, and gives up at the 32nd.
            if n + 1 >= MAX_MEMBERS {
                return Err(state);
            }
            let member = member.trim_matches([' ', '\t']);
            let Some((key, value)) = member.split_once('=') else {
                continue;
            };
            if key.len() > MAX_KEY_LENGTH {
                ok = false;
                continue;
            }
            if let Some((tenant, system)) = key.split_once('@')
                && (tenant.len() > MAX_TENANT_LENGTH || system.len() > MAX_SYSTEM_LENGTH)
            {
                ok = false;
                continue;
            }
            if key == "ot" {
                match OtelState::parse(value) {
                    Ok(ot) => state.ot = ot,
                    Err(ot) => {
                        state.ot = ot;
                        ok = false;
                    }
                }
            } else {
                state.extra.push((key.into(), value.into()));
            }
        }
        if ok { Ok(state) } else { Err(state) }
    }

    /// The trace state as a `tracestate` header value.
    pub fn serialize(&self) -> String {
        let mut out = String::new();
        if self.ot.has_any() {
            out.push_str("ot=");
            self.ot.write(&mut out);
        }
        for (k, v) in &self.extra {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(k);
            out.push('=');
            out.push_str(v);
        }
        out
    }
}

/// The members of a list as the collector walks them: a separator at the very end starts no
/// member (`a=1,` has one), which matters for the member limit.
fn members(input: &str, sep: char) -> impl Iterator<Item = &str> {
    let input = input.strip_suffix(sep).unwrap_or(input);
    input.split(sep)
}

fn lc_alpha(c: u8) -> bool {
    c.is_ascii_lowercase()
}

fn lc_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn key_char(c: u8) -> bool {
    lc_alnum(c) || matches!(c, b'_' | b'-' | b'*' | b'/')
}

fn valid_w3c(input: &str) -> bool {
    input.split(',').all(|member| {
        let member = member.trim_matches([' ', '\t']);
        if member.is_empty() {
            return true;
        }
        match member.find('=') {
            Some(eq) if eq >= 1 => {
                valid_w3c_key(&member[..eq]) && valid_w3c_value(&member[eq + 1..])
            }
            _ => false,
        }
    })
}

fn valid_w3c_key(key: &str) -> bool {
    let b = key.as_bytes();
    if let Some((tenant, system)) = key.split_once('@') {
        let (t, s) = (tenant.as_bytes(), system.as_bytes());
        return !t.is_empty()
            && !s.is_empty()
            && lc_alnum(t[0])
            && lc_alpha(s[0])
            && t[1..].iter().all(|&c| key_char(c))
            && s[1..].iter().all(|&c| key_char(c));
    }
    !b.is_empty() && lc_alpha(b[0]) && b[1..].iter().all(|&c| key_char(c))
}

fn nonblank_value_char(c: u8) -> bool {
    matches!(c, 0x21..=0x2b | 0x2d..=0x3c | 0x3e..=0x7e)
}

fn valid_w3c_value(value: &str) -> bool {
    let b = value.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && nonblank_value_char(b[b.len() - 1])
        && b[..b.len() - 1]
            .iter()
            .all(|&c| c == 0x20 || nonblank_value_char(c))
}

fn valid_otel(input: &str) -> bool {
    if input.is_empty() || input.ends_with(';') {
        return false;
    }
    input.split(';').all(|member| match member.find(':') {
        Some(colon) if colon >= 1 => {
            let (key, value) = member.as_bytes().split_at(colon);
            let value = &value[1..];
            lc_alpha(key[0])
                && key[1..].iter().all(|&c| lc_alnum(c))
                && value
                    .iter()
                    .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
        }
        _ => false,
    })
}
