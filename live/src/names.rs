//! Names and text that the API server accepts.
//!
//! kube-apiserver refuses (422) an object whose name, or whose `generateName` prefix, breaks the
//! RFC 1123 subdomain rule (lower-case alphanumerics, '-' and '.', starting and ending with an
//! alphanumeric), and it measures its length limits in bytes. The helpers here build what
//! gpusched sends so that it always passes; `tests/support/validation.rs` holds the server's
//! side of the rules.

/// The prefix the API server keeps from a `generateName` (63 − the 5 characters it appends).
pub const MAX_GENERATE_NAME_PREFIX: usize = 58;

/// `generateName` for an Event about `object` (a valid object name): the object's name and a
/// '-', as kubectl and kube-scheduler name theirs. The server appends 5 characters; a prefix
/// that ended in '.' (as gpusched once sent) is refused, so the cut prefix loses any trailing
/// '.' or '-' before the '-' is added.
pub fn event_generate_name(object: &str) -> String {
    let mut base = truncate_bytes(object, MAX_GENERATE_NAME_PREFIX - 1).to_string();
    while base.ends_with(['.', '-']) {
        base.pop();
    }
    if base.is_empty() {
        base.push_str("gpusched");
    }
    base.push('-');
    base
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary (the API
/// server's limits are bytes; a message with '→' or 'é' is longer in bytes than in characters).
pub fn truncate_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    &s[..cut]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_prefixes_end_in_a_dash_after_an_alphanumeric() {
        assert_eq!(event_generate_name("chat-0"), "chat-0-");
        assert_eq!(event_generate_name("a.b"), "a.b-");
        let long = format!("{}.{}", "a".repeat(56), "b".repeat(20));
        let g = event_generate_name(&long);
        assert_eq!(g, format!("{}-", "a".repeat(56)));
        assert!(g.len() <= MAX_GENERATE_NAME_PREFIX);
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate_bytes("a→b", 2), "a");
        assert_eq!(truncate_bytes("a→b", 4), "a→");
        assert_eq!(truncate_bytes("abc", 10), "abc");
    }
}
