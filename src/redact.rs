//! Secrets kept out of logs and error messages: URL credentials, request query strings (tokens
//! travel there), route `sig_key=` values and secret config values. Each helper returns its input
//! unchanged (borrowed) when there is nothing to hide, so the common case allocates nothing.
//!
//! What replaces a secret is always [`MASK`]; the structure around it (scheme, host, path, option
//! name, config key) stays, so a log line still says which URL, route or key it is about.

use std::borrow::Cow;

/// What a hidden value is shown as.
pub const MASK: &str = "***";

/// Config keys whose values are secrets (in any section): shown masked in config errors.
const SECRET_KEYS: [&str; 6] = [
    "sig_key",
    "jwt_key",
    "basic_auth",
    "password",
    "token",
    "nkey_seed",
];

/// A URL with its user information (`user:password@`, or a NATS token as `token@`) masked:
/// `nats://alice:s3cret@host:4222` → `nats://***@host:4222`. A URL without a scheme
/// (`user:pass@host:4222`) is read as an authority.
pub fn url(s: &str) -> Cow<'_, str> {
    let start = s.find("://").map_or(0, |i| i + 3);
    let authority_len = s[start..].find(['/', '?', '#']).unwrap_or(s.len() - start);
    match s[start..start + authority_len].rfind('@') {
        Some(at) => Cow::Owned(format!("{}{MASK}{}", &s[..start], &s[start + at..])),
        None => Cow::Borrowed(s),
    }
}

/// Free text (an error message) with the user information of every `scheme://user@host` in it
/// masked.
pub fn urls_in(text: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut done = 0;
    let mut from = 0;
    while let Some(found) = text[from..].find("://") {
        let start = from + found + 3;
        let end = text[start..]
            .find(|c: char| c.is_whitespace() || "/?#\"'`,;<>[]()".contains(c))
            .map_or(text.len(), |i| start + i);
        if let Some(at) = text[start..end].rfind('@') {
            out.push_str(&text[done..start]);
            out.push_str(MASK);
            done = start + at;
        }
        from = end;
    }
    if done == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[done..]);
    Cow::Owned(out)
}

/// A request target with its query string masked: `/feed?token=abc` → `/feed?***`. Signed URLs
/// and API tokens travel in query strings; the path is enough to tell requests apart in a log.
pub fn target(t: &str) -> Cow<'_, str> {
    match t.find('?') {
        Some(q) if q + 1 < t.len() => Cow::Owned(format!("{}?{MASK}", &t[..q])),
        _ => Cow::Borrowed(t),
    }
}

/// A routes-file line with every `sig_key=` value masked (quoted values included, also inside a
/// comment). A value whose quote never closes hides the rest of the line.
pub fn route_line(line: &str) -> Cow<'_, str> {
    const NAME: &str = "sig_key=";
    let lower = line.to_ascii_lowercase();
    let mut out = String::new();
    let mut done = 0;
    let mut from = 0;
    while let Some(found) = lower[from..].find(NAME) {
        let start = from + found + NAME.len();
        let end = option_value_end(line, start);
        out.push_str(&line[done..start]);
        out.push_str(MASK);
        done = end;
        from = end;
    }
    if done == 0 {
        return Cow::Borrowed(line);
    }
    out.push_str(&line[done..]);
    Cow::Owned(out)
}

/// Where an option value that starts at `start` ends: at an unquoted `,`, space, tab or `#`, as
/// the routes parser reads it (`"..."` may appear anywhere in a value).
fn option_value_end(line: &str, start: usize) -> usize {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in line[start..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' | ' ' | '\t' | '#' if !quoted => return start + i,
            _ => {}
        }
    }
    line.len()
}

/// A config (TOML) error message with secret values masked: the parser quotes the offending
/// line, which may be `sig_key = "..."`, `password = ...` or a NATS URL with credentials.
pub fn config_text(text: &str) -> Cow<'_, str> {
    let mut changed = false;
    let lines: Vec<Cow<'_, str>> = text
        .split_inclusive('\n')
        .map(|line| {
            let masked = secret_assignment(line);
            changed |= matches!(masked, Cow::Owned(_));
            masked
        })
        .collect();
    let text: Cow<'_, str> = if changed {
        Cow::Owned(lines.concat())
    } else {
        Cow::Borrowed(text)
    };
    match urls_in(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(s) => Cow::Owned(s),
    }
}

/// `... key = value` with the value masked when `key` names a secret.
fn secret_assignment(line: &str) -> Cow<'_, str> {
    let Some(eq) = line.find('=') else {
        return Cow::Borrowed(line);
    };
    let before = line[..eq].trim_end();
    let key = before
        .rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .next()
        .unwrap_or("");
    if !SECRET_KEYS.iter().any(|k| key.ends_with(k)) {
        return Cow::Borrowed(line);
    }
    let newline = if line.ends_with('\n') { "\n" } else { "" };
    Cow::Owned(format!("{}= {MASK}{newline}", &line[..eq]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_credentials_are_masked() {
        assert_eq!(
            url("nats://alice:s3cret@nats.example:4222"),
            "nats://***@nats.example:4222"
        );
        assert_eq!(url("tls://t0ken@h:4222/x@y"), "tls://***@h:4222/x@y");
        assert_eq!(url("user:pw@h:4222"), "***@h:4222");
        assert!(matches!(url("nats://h:4222"), Cow::Borrowed(_)));
        assert!(matches!(url("h:4222"), Cow::Borrowed(_)));
        // An '@' in the path is not user information.
        assert!(matches!(url("http://h/a@b"), Cow::Borrowed(_)));
    }

    #[test]
    fn urls_in_text_are_masked() {
        let text = "servers: \"nats://u:p@h:1\" is not a NATS URL; tried tls://tok@g:2, nats://k:3";
        assert_eq!(
            urls_in(text),
            "servers: \"nats://***@h:1\" is not a NATS URL; tried tls://***@g:2, nats://k:3"
        );
        assert!(matches!(urls_in("no urls here"), Cow::Borrowed(_)));
        assert!(matches!(urls_in("see http://h/a@b"), Cow::Borrowed(_)));
    }

    #[test]
    fn query_strings_are_masked() {
        assert_eq!(target("/feed?token=abc&x=1"), "/feed?***");
        assert!(matches!(target("/feed"), Cow::Borrowed(_)));
        assert!(matches!(target("/feed?"), Cow::Borrowed(_)));
        assert_eq!(target("*?a"), "*?***");
    }

    #[test]
    fn route_sig_keys_are_masked() {
        assert_eq!(
            route_line("*,sig_key=SECRET,sig_iss=me a:1"),
            "*,sig_key=***,sig_iss=me a:1"
        );
        assert_eq!(
            route_line("* ,sig_key=\"SE CRET,x\" a:1"),
            "* ,sig_key=*** a:1"
        );
        assert_eq!(route_line("*,SIG_KEY=abc#c"), "*,SIG_KEY=***#c");
        // A quote that never closes hides the rest of the line.
        assert_eq!(route_line("*,sig_key=\"SECRET a:1"), "*,sig_key=***");
        // A fully quoted option: the value is hidden up to where the parser would end it.
        assert!(!route_line("*,\"sig_key=SECRET\" a:1").contains("SECRET"));
        assert_eq!(
            route_line("* a:1 # old: sig_key=OLD"),
            "* a:1 # old: sig_key=***"
        );
        assert!(matches!(route_line("* a:1,sig_iss=x"), Cow::Borrowed(_)));
    }

    #[test]
    fn config_secret_values_are_masked() {
        let message = "TOML parse error at line 3, column 11\n  |\n3 | sig_key = \"s3cret\n  |           ^\ninvalid basic string\n";
        let masked = config_text(message);
        assert!(!masked.contains("s3cret"), "{masked}");
        assert!(masked.contains("3 | sig_key = ***\n"), "{masked}");
        assert!(masked.contains("invalid basic string"));
        let nats = "1 | servers = [\"nats://u:pw@h:4222\", 5]\n";
        assert_eq!(
            config_text(nats),
            "1 | servers = [\"nats://***@h:4222\", 5]\n"
        );
        for key in ["jwt_key", "basic_auth", "password", "token", "nkey_seed"] {
            let line = format!("{key}=\"hidden\"");
            assert_eq!(config_text(&line), format!("{key}= ***"));
        }
        assert!(matches!(
            config_text("2 | sig_iss = \"pushpin\"\n"),
            Cow::Borrowed(_)
        ));
    }
}
