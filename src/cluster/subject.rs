//! NATS subjects for holdfast channels. Sans-IO.
//!
//! A channel name may hold any character (spaces, dots, `*`, `>`), most of which have a meaning
//! in a NATS subject, so the channel is carried as one token of unpadded base64url (RFC 4648 §5:
//! `A-Z a-z 0-9 - _`): channel `news.eu` on prefix `holdfast` is subject `holdfast.bmV3cy5ldQ`.
//! The encoding is one-to-one, so two channels never share a subject.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The subject a channel's publishes travel on.
pub fn for_channel(prefix: &str, channel: &str) -> String {
    let mut s = String::with_capacity(prefix.len() + 1 + channel.len().div_ceil(3) * 4);
    s.push_str(prefix);
    s.push('.');
    URL_SAFE_NO_PAD.encode_string(channel.as_bytes(), &mut s);
    s
}

/// The channel a subject carries, if it is one of `prefix`'s.
pub fn channel_of(prefix: &str, subject: &str) -> Option<String> {
    let token = subject.strip_prefix(prefix)?.strip_prefix('.')?;
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_with_subject_syntax_become_one_token() {
        for channel in ["news.eu", "a b", "*", ">", "ü/€", "x", "a\tb\r\n"] {
            let s = for_channel("holdfast", channel);
            let token = s.strip_prefix("holdfast.").unwrap();
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{s}"
            );
            assert_eq!(channel_of("holdfast", &s).as_deref(), Some(channel));
        }
        assert_eq!(for_channel("holdfast", "news.eu"), "holdfast.bmV3cy5ldQ");
    }

    #[test]
    fn foreign_or_broken_subjects_are_not_channels() {
        assert_eq!(channel_of("holdfast", "other.bmV3cy5ldQ"), None);
        assert_eq!(channel_of("holdfast", "holdfastbmV3"), None);
        assert_eq!(channel_of("holdfast", "holdfast.!!"), None);
        assert_eq!(channel_of("holdfast", "holdfast.__8"), None, "not UTF-8");
    }
}
