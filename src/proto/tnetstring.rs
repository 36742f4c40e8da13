//! Typed netstrings (tnetstrings), the encoding of Pushpin's ZeroMQ messages: `<len>:<data><tag>`
//! with tags `,` bytes, `#` integer, `^` float, `!` boolean, `~` null, `]` list, `}` map (keys are
//! byte strings).
//!
//! Sans-IO: [`decode`] reads a whole message, [`encode`] appends one value. Follows Pushpin's
//! `tnetstring.cpp`, stricter where Pushpin reads past the end or ignores junk: the value must
//! span the whole input, lengths have no sign or leading `+`, nesting is bounded
//! ([`DEPTH_MAX`]), and integers must fit an `i64`. Bytes borrow from the input.

use std::fmt;

/// Deepest nesting of lists and maps accepted: a publish item is 4 deep, a command 6.
pub const DEPTH_MAX: usize = 32;

/// Digits of a length prefix at most (lengths up to 999 999 999; messages are far smaller).
const LEN_DIGITS_MAX: usize = 9;

/// A decoded value. Map entries keep the order they were written in; a repeated key keeps the
/// last value on lookup ([`Value::get`]), as Pushpin's hash does.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Bytes(&'a [u8]),
    List(Vec<Value<'a>>),
    Map(Vec<(&'a [u8], Value<'a>)>),
}

impl<'a> Value<'a> {
    /// The value under `key` in a map (the last one written); `None` for other kinds.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        match self {
            Value::Map(entries) => entries
                .iter()
                .rev()
                .find(|(k, _)| *k == key.as_bytes())
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The bytes of a byte string.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// What kind of value this is, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Bytes(_) => "a string",
            Value::List(_) => "a list",
            Value::Map(_) => "a map",
        }
    }
}

/// Why bytes are not a tnetstring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty input")]
    Empty,
    #[error("bad length prefix")]
    BadLength,
    #[error("value runs past the end of the input")]
    Truncated,
    #[error("unknown type tag")]
    BadTag,
    #[error("bad {0} value")]
    BadScalar(&'static str),
    #[error("map key is not a string")]
    KeyNotString,
    #[error("nested deeper than {DEPTH_MAX} levels")]
    TooDeep,
    #[error("bytes after the value")]
    TrailingBytes,
}

/// Decodes `input`, which must hold exactly one value.
pub fn decode(input: &[u8]) -> Result<Value<'_>, DecodeError> {
    if input.is_empty() {
        return Err(DecodeError::Empty);
    }
    let (value, used) = decode_at(input, 0)?;
    if used != input.len() {
        return Err(DecodeError::TrailingBytes);
    }
    Ok(value)
}

/// Splits one frame off the front: its payload, tag and the bytes it used.
fn frame(input: &[u8]) -> Result<(&[u8], u8, usize), DecodeError> {
    let colon = input
        .iter()
        .take(LEN_DIGITS_MAX + 1)
        .position(|&b| b == b':')
        .ok_or(if input.len() <= LEN_DIGITS_MAX {
            DecodeError::Truncated
        } else {
            DecodeError::BadLength
        })?;
    let digits = &input[..colon];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(DecodeError::BadLength);
    }
    let len = digits
        .iter()
        .fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
    let start = colon + 1;
    let end = start.checked_add(len).ok_or(DecodeError::BadLength)?;
    let tag = *input.get(end).ok_or(DecodeError::Truncated)?;
    Ok((&input[start..end], tag, end + 1))
}

fn decode_at(input: &[u8], depth: usize) -> Result<(Value<'_>, usize), DecodeError> {
    let (data, tag, used) = frame(input)?;
    let value = match tag {
        b',' => Value::Bytes(data),
        b'#' => Value::Int(int(data)?),
        b'^' => Value::Float(float(data)?),
        b'!' => match data {
            b"true" => Value::Bool(true),
            b"false" => Value::Bool(false),
            _ => return Err(DecodeError::BadScalar("boolean")),
        },
        b'~' if data.is_empty() => Value::Null,
        b'~' => return Err(DecodeError::BadScalar("null")),
        b']' | b'}' if depth >= DEPTH_MAX => return Err(DecodeError::TooDeep),
        b']' => Value::List(list(data, depth + 1)?),
        b'}' => Value::Map(map(data, depth + 1)?),
        _ => return Err(DecodeError::BadTag),
    };
    Ok((value, used))
}

fn int(data: &[u8]) -> Result<i64, DecodeError> {
    let bad = DecodeError::BadScalar("integer");
    let digits = data.strip_prefix(b"-").unwrap_or(data);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad);
    }
    std::str::from_utf8(data)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(bad)
}

fn float(data: &[u8]) -> Result<f64, DecodeError> {
    let bad = DecodeError::BadScalar("float");
    // Digits, sign, point and exponent only: no "inf", "nan" or spaces.
    if data.is_empty()
        || !data
            .iter()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(b))
    {
        return Err(bad);
    }
    std::str::from_utf8(data)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|f| f.is_finite())
        .ok_or(bad)
}

fn list(mut data: &[u8], depth: usize) -> Result<Vec<Value<'_>>, DecodeError> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let (value, used) = decode_at(data, depth)?;
        out.push(value);
        data = &data[used..];
    }
    Ok(out)
}

fn map(mut data: &[u8], depth: usize) -> Result<Vec<(&[u8], Value<'_>)>, DecodeError> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let (key, tag, used) = frame(data)?;
        if tag != b',' {
            return Err(DecodeError::KeyNotString);
        }
        data = &data[used..];
        if data.is_empty() {
            return Err(DecodeError::Truncated);
        }
        let (value, used) = decode_at(data, depth)?;
        out.push((key, value));
        data = &data[used..];
    }
    Ok(out)
}

/// Appends `value` to `out`.
pub fn encode(value: &Value<'_>, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"0:~"),
        Value::Bool(b) => scalar(out, if *b { "true" } else { "false" }, b'!'),
        Value::Int(n) => scalar(out, &n.to_string(), b'#'),
        Value::Float(f) => scalar(out, &float_text(*f), b'^'),
        Value::Bytes(b) => framed(out, b, b','),
        Value::List(items) => {
            let mut body = Vec::new();
            for item in items {
                encode(item, &mut body);
            }
            framed(out, &body, b']');
        }
        Value::Map(entries) => {
            let mut body = Vec::new();
            for (key, item) in entries {
                framed(&mut body, key, b',');
                encode(item, &mut body);
            }
            framed(out, &body, b'}');
        }
    }
}

/// Encodes `value` into a new buffer.
pub fn to_vec(value: &Value<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    encode(value, &mut out);
    out
}

fn scalar(out: &mut Vec<u8>, text: &str, tag: u8) {
    framed(out, text.as_bytes(), tag);
}

fn framed(out: &mut Vec<u8>, data: &[u8], tag: u8) {
    out.extend_from_slice(data.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(data);
    out.push(tag);
}

/// A float as digits that parse back to it (non-finite values, which tnetstrings cannot carry,
/// become 0).
fn float_text(f: f64) -> String {
    if !f.is_finite() {
        return "0.0".to_owned();
    }
    // Debug output is the shortest text that parses back exactly ("1.5", "1e30").
    format!("{f:?}")
}

impl fmt::Display for Value<'_> {
    /// A JSON-like rendering for logs, bytes escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(n) => write!(f, "{n}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Bytes(b) => write!(f, "\"{}\"", b.escape_ascii()),
            Value::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Value::Map(entries) => {
                f.write_str("{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "\"{}\": {v}", k.escape_ascii())?;
                }
                f.write_str("}")
            }
        }
    }
}

#[cfg(test)]
#[path = "tnetstring_tests.rs"]
mod tests;
