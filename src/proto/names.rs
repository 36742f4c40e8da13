//! Channel names, item ids and subscription meta: the identifiers that arrive from publishers,
//! origins (GRIP headers, grip-instruct JSON, WebSocket control messages, `Set-Meta-*`), clients
//! (never directly) and cluster peers, and later travel in HTTP heads (`Grip-Last`, `Meta-*`).
//!
//! Each is checked here, at every entry, against one set of rules: bounded length, no control
//! characters, meta names that are header tokens. The HTTP/1 encoder would refuse a CR or LF on
//! the way out anyway; checking at the entry gives the sender a clear error (400 to a publisher,
//! 502 to a client whose origin sent it) instead of a failure later, far from its cause.

use super::http1::is_token;

/// Bounds on identifiers (defaults: 512 bytes each, 1 024 for a meta value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameLimits {
    pub channel_bytes_max: usize,
    /// An item's `id` and `prev-id`, and a channel's `prev-id` from the origin.
    pub id_bytes_max: usize,
    pub meta_value_bytes_max: usize,
}

impl Default for NameLimits {
    fn default() -> Self {
        NameLimits {
            channel_bytes_max: 512,
            id_bytes_max: 512,
            meta_value_bytes_max: 1024,
        }
    }
}

/// Why an identifier was refused. The identifier itself is left out: the caller names the
/// field, and the value may be long or hostile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("must not be empty")]
    Empty,
    #[error("is longer than {0} bytes")]
    TooLong(usize),
    #[error("must not contain control characters")]
    Control,
    #[error("must be a token (letters, digits and !#$%&'*+-.^_`|~)")]
    NotToken,
}

fn bounded(s: &str, max: usize) -> Result<(), NameError> {
    if s.len() > max {
        return Err(NameError::TooLong(max));
    }
    if s.chars().any(char::is_control) {
        return Err(NameError::Control);
    }
    Ok(())
}

/// A channel name: non-empty, bounded, no control character.
pub fn check_channel(name: &str, limits: &NameLimits) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    bounded(name, limits.channel_bytes_max)
}

/// An `id` or `prev-id`: bounded, no control character.
pub fn check_id(id: &str, limits: &NameLimits) -> Result<(), NameError> {
    bounded(id, limits.id_bytes_max)
}

/// A subscription meta name: a header token (it becomes `Meta-<name>`), within the channel
/// name bound.
pub fn check_meta_name(name: &str, limits: &NameLimits) -> Result<(), NameError> {
    if name.len() > limits.channel_bytes_max {
        return Err(NameError::TooLong(limits.channel_bytes_max));
    }
    if !is_token(name) {
        return Err(NameError::NotToken);
    }
    Ok(())
}

/// A subscription meta value: bounded, no control character.
pub fn check_meta_value(value: &str, limits: &NameLimits) -> Result<(), NameError> {
    bounded(value, limits.meta_value_bytes_max)
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: NameLimits = NameLimits {
        channel_bytes_max: 8,
        id_bytes_max: 4,
        meta_value_bytes_max: 6,
    };

    #[test]
    fn channels() {
        assert_eq!(check_channel("news", &L), Ok(()));
        assert_eq!(check_channel("caf\u{e9} 1", &L), Ok(()));
        assert_eq!(check_channel("", &L), Err(NameError::Empty));
        assert_eq!(check_channel("123456789", &L), Err(NameError::TooLong(8)));
        for bad in ["a\r\nb", "a\nb", "a\0", "\u{7f}", "\u{85}", "a\tb"] {
            assert_eq!(check_channel(bad, &L), Err(NameError::Control), "{bad:?}");
        }
    }

    #[test]
    fn ids() {
        assert_eq!(check_id("", &L), Ok(()));
        assert_eq!(check_id("1234", &L), Ok(()));
        assert_eq!(check_id("12345", &L), Err(NameError::TooLong(4)));
        assert_eq!(check_id("1\r\n", &L), Err(NameError::Control));
    }

    #[test]
    fn meta() {
        assert_eq!(check_meta_name("user", &L), Ok(()));
        for bad in ["", "a b", "a:b", "a\r\n", "\u{e9}"] {
            assert_eq!(
                check_meta_name(bad, &L),
                Err(NameError::NotToken),
                "{bad:?}"
            );
        }
        assert_eq!(check_meta_value("alice", &L), Ok(()));
        assert_eq!(
            check_meta_value("x\r\nEvil: 1", &L),
            Err(NameError::TooLong(6))
        );
        assert_eq!(check_meta_value("x\r\n", &L), Err(NameError::Control));
    }
}
