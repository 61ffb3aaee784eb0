//! `trace_state["key"]` as the collector reads it: the W3C trace state parsed as
//! OpenTelemetry Go's `trace.ParseTraceState` parses it, nil when it does not parse, and
//! a member's value (empty when there is none) when it does.

/// The value of member `key`, `None` when `state` is not a valid W3C trace state.
pub fn get<'s>(state: &'s str, key: &str) -> Option<&'s str> {
    let mut members: Vec<(&str, &str)> = Vec::new();
    for member in state.split(',').filter(|m| !m.is_empty()) {
        let (k, v) = member.split_once('=')?;
        let (k, v) = (
            k.trim_start_matches([' ', '\t']),
            v.trim_end_matches([' ', '\t']),
        );
        if !valid_key(k) || !valid_value(v) || members.iter().any(|(seen, _)| *seen == k) {
            return None;
        }
        members.push((k, v));
        if members.len() > 32 {
            return None;
        }
    }
    let found = members.into_iter().find(|(k, _)| *k == key);
    Some(found.map_or("", |(_, v)| v))
}

fn valid_value(v: &str) -> bool {
    let printable = |c: u8, first: u8| (first..=0x7e).contains(&c) && c != b',' && c != b'=';
    match v.as_bytes().split_last() {
        Some((last, rest)) if v.len() <= 256 => {
            rest.iter().all(|c| printable(*c, 0x20)) && printable(*last, 0x21)
        }
        _ => false,
    }
}

/// `key` or `tenant@system`, each part within its length and alphabet.
fn valid_key(k: &str) -> bool {
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let remain = |s: &[u8]| s.iter().all(|c| alnum(*c) || b"_-*/".contains(c));
    let part = |s: &[u8], max: usize, first_ok: &dyn Fn(u8) -> bool| match s.split_first() {
        Some((first, rest)) => first_ok(*first) && rest.len() <= max && remain(rest),
        None => false,
    };
    let lower = |c: u8| c.is_ascii_lowercase();
    match k.split_once('@') {
        None => part(k.as_bytes(), 255, &lower),
        Some((tenant, system)) => {
            part(tenant.as_bytes(), 240, &alnum) && part(system.as_bytes(), 13, &lower)
        }
    }
}
