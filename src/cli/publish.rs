//! `holdfast publish CHANNEL [MESSAGE]`: one item to the publish API, with the options of
//! Pushpin's `pushpin-publish` where holdfast has the feature (id, prev-id, sender, meta, code,
//! headers, hint, close, patch, no-seq, no-eol), the message from an argument or standard input.

use std::io::{IsTerminal, Read};

use base64::Engine;
use serde_json::{Map, Value, json};

use super::http::{self, Request};
use super::{ApiArgs, Globals, Purpose};

/// Most bytes read from standard input for one message (the publish API's own limit,
/// publish.body_bytes_max, is 1 MB by default and answers 413 past it).
const STDIN_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// The formats an item carries.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    HttpStream,
    HttpResponse,
    WsMessage,
}

impl Format {
    fn key(self) -> &'static str {
        match self {
            Format::HttpStream => "http-stream",
            Format::HttpResponse => "http-response",
            Format::WsMessage => "ws-message",
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct PublishArgs {
    /// Channel to publish to.
    pub channel: String,
    /// The message, for HTTP bodies and WebSocket messages. Without it, or as "-", standard
    /// input is read to its end and sent byte for byte (no newline added).
    pub message: Option<String>,
    /// Item id (subscribers that track ids get items in order; duplicates are dropped).
    #[arg(long)]
    pub id: Option<String>,
    /// The id of the item before this one on the channel.
    #[arg(long, value_name = "ID")]
    pub prev_id: Option<String>,
    /// Meta `sender` (for the skip-self filter).
    #[arg(long)]
    pub sender: Option<String>,
    /// Meta entries for filters (repeatable).
    #[arg(short = 'M', long = "meta", value_name = "NAME=VALUE")]
    pub meta: Vec<String>,
    /// Status code of the http-response format.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u16).range(100..=999))]
    pub code: u16,
    /// A header of the http-response format (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Only these formats (repeatable); default: every one the action has.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Vec<Format>,
    /// Send a hint (held requests and streams fetch the update from the origin) instead of
    /// content.
    #[arg(long, conflicts_with_all = ["close", "patch", "message"])]
    pub hint: bool,
    /// Close streams and WebSockets instead of sending content.
    #[arg(long, conflicts_with_all = ["patch", "message"])]
    pub close: bool,
    /// The message is a JSON Patch (a list) applied to each held long-poll's body.
    #[arg(long)]
    pub patch: bool,
    /// Deliver at once, without waiting for a missing prev-id.
    #[arg(long)]
    pub no_seq: bool,
    /// Do not add a newline to the HTTP payloads of a message given as an argument.
    #[arg(long)]
    pub no_eol: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// What the item does.
enum Action {
    Send { http: Vec<u8>, ws: Vec<u8> },
    Patch(Value),
    Hint,
    Close,
}

impl Action {
    fn formats(&self) -> &'static [Format] {
        match self {
            Action::Send { .. } => &[Format::HttpStream, Format::HttpResponse, Format::WsMessage],
            Action::Patch(_) => &[Format::HttpResponse],
            Action::Hint => &[Format::HttpStream, Format::HttpResponse],
            Action::Close => &[Format::HttpStream, Format::WsMessage],
        }
    }
}

/// Publishes the item; Ok is what to print.
pub fn run(args: &PublishArgs, globals: &Globals) -> Result<String, String> {
    let reads_stdin =
        !(args.hint || args.close) && args.message.as_deref().is_none_or(|m| m == "-");
    if reads_stdin && std::io::stdin().is_terminal() {
        eprintln!("holdfast publish: reading the message from standard input (end it with Ctrl-D)");
    }
    let action = action(args, &mut std::io::stdin())?;
    let item = item(args, &action)?;
    let api = args.api.resolve(globals, Purpose::Publish)?;
    let body = json!({ "items": [item] }).to_string();
    let authorization = api.credentials.authorization()?;
    let mut headers: Vec<(&str, &[u8])> = vec![("Content-Type", b"application/json")];
    if let Some(a) = &authorization {
        headers.push(("Authorization", a.as_bytes()));
    }
    let req = Request {
        method: "POST",
        path: "/publish/",
        headers: &headers,
        body: body.as_bytes(),
    };
    let reply = http::send(&api.endpoint, &req, api.timeout).map_err(|e| {
        format!(
            "{e}\n  (the address is from {}; is holdfast running?)",
            api.source
        )
    })?;
    if reply.status == 200 {
        return Ok("Published".into());
    }
    let mut msg = format!(
        "{} refused the publish: {} {}: {}",
        api.endpoint.url("/publish/"),
        reply.status,
        reply.reason,
        reply.text()
    );
    if reply.status == 401 {
        msg.push_str(&format!(
            "\n  (sent {}; the credentials are publish.basic_auth or publish.jwt_key in the \
             config, or --user / --jwt-key-file)",
            api.credentials.kind()
        ));
    }
    Err(msg)
}

/// The action from the flags and the message (argument, or `input` read to its end).
fn action(args: &PublishArgs, input: &mut dyn Read) -> Result<Action, String> {
    if args.hint {
        return Ok(Action::Hint);
    }
    if args.close {
        return Ok(Action::Close);
    }
    let (bytes, from_argument) = match args.message.as_deref() {
        Some(m) if m != "-" => (m.as_bytes().to_vec(), true),
        _ => (read_input(input)?, false),
    };
    if bytes.is_empty() && !from_argument {
        // Most likely a script that meant to pass the message and passed nothing.
        return Err(
            "no message: standard input was empty (give MESSAGE, or \"\" for an \
                    empty one)"
                .into(),
        );
    }
    if args.patch {
        let patch: Value = serde_json::from_slice(&bytes)
            .map_err(|e| format!("--patch: the message is not JSON: {e}"))?;
        if !patch.is_array() {
            return Err("--patch: the message must be a JSON list of operations".into());
        }
        return Ok(Action::Patch(patch));
    }
    let mut http = bytes.clone();
    if from_argument && !args.no_eol {
        http.push(b'\n');
    }
    Ok(Action::Send { http, ws: bytes })
}

fn read_input(input: &mut dyn Read) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    input
        .take(STDIN_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the message from standard input: {e}"))?;
    if bytes.len() as u64 > STDIN_BYTES_MAX {
        return Err(format!(
            "the message on standard input is over {STDIN_BYTES_MAX} bytes"
        ));
    }
    Ok(bytes)
}

/// The JSON item.
fn item(args: &PublishArgs, action: &Action) -> Result<Value, String> {
    let possible = action.formats();
    let wanted: Vec<Format> = if args.format.is_empty() {
        possible.to_vec()
    } else {
        args.format.clone()
    };
    let mut formats = Map::new();
    for f in wanted {
        if !possible.contains(&f) {
            let names: Vec<&str> = possible.iter().map(|f| f.key()).collect();
            return Err(format!(
                "--format {}: this item can only be {}",
                f.key(),
                names.join(", ")
            ));
        }
        formats.insert(f.key().into(), format(f, action, args)?);
    }
    let mut item = Map::new();
    item.insert("channel".into(), args.channel.clone().into());
    if let Some(id) = &args.id {
        item.insert("id".into(), id.clone().into());
    }
    if let Some(prev) = &args.prev_id {
        item.insert("prev-id".into(), prev.clone().into());
    }
    let meta = meta(args)?;
    if !meta.is_empty() {
        item.insert("meta".into(), meta.into());
    }
    if args.no_seq {
        item.insert("no-seq".into(), true.into());
    }
    item.insert("formats".into(), formats.into());
    Ok(item.into())
}

fn meta(args: &PublishArgs) -> Result<Map<String, Value>, String> {
    let mut meta = Map::new();
    if let Some(sender) = &args.sender {
        meta.insert("sender".into(), sender.clone().into());
    }
    for m in &args.meta {
        let (k, v) = m
            .split_once('=')
            .ok_or_else(|| format!("--meta {m:?}: must be NAME=VALUE"))?;
        meta.insert(k.trim().into(), v.trim().into());
    }
    Ok(meta)
}

/// One format of the item.
fn format(f: Format, action: &Action, args: &PublishArgs) -> Result<Value, String> {
    let mut obj = Map::new();
    match action {
        Action::Hint => {
            obj.insert("action".into(), "hint".into());
        }
        Action::Close => {
            obj.insert("action".into(), "close".into());
        }
        Action::Patch(patch) => {
            obj.insert("body-patch".into(), patch.clone());
        }
        Action::Send { http, ws } => {
            let (key, bytes) = match f {
                Format::HttpStream => ("content", http),
                Format::HttpResponse => ("body", http),
                Format::WsMessage => ("content", ws),
            };
            insert_content(&mut obj, key, bytes);
        }
    }
    if f == Format::HttpResponse && !matches!(action, Action::Hint) {
        obj.insert("code".into(), args.code.into());
        let headers = headers(&args.headers)?;
        if !headers.is_empty() {
            obj.insert("headers".into(), headers.into());
        }
    }
    Ok(obj.into())
}

/// `content` as text, or `content-bin` (base64) when the bytes are not UTF-8 (a WebSocket
/// message then goes out as a binary frame).
fn insert_content(obj: &mut Map<String, Value>, key: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => obj.insert(key.into(), text.into()),
        Err(_) => {
            let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
            obj.insert(format!("{key}-bin"), b64.into())
        }
    };
}

/// `-H "Name: value"` → `[["Name", "value"], ...]` (the publish API checks names and values).
fn headers(flags: &[String]) -> Result<Vec<Value>, String> {
    flags
        .iter()
        .map(|h| {
            let (name, value) = h
                .split_once(':')
                .ok_or_else(|| format!("--header {h:?}: must be \"NAME: VALUE\""))?;
            Ok(json!([name.trim(), value.trim()]))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: PublishArgs,
    }

    fn built(argv: &[&str], stdin: &[u8]) -> Result<Value, String> {
        let cli = Cli::try_parse_from(std::iter::once("publish").chain(argv.iter().copied()))
            .map_err(|e| e.to_string())?;
        let action = action(&cli.args, &mut &stdin[..])?;
        item(&cli.args, &action)
    }

    #[test]
    fn a_message_goes_to_every_format_with_a_newline_for_http() {
        let item = built(&["news", "hello", "--id", "2", "--prev-id", "1"], b"").unwrap();
        assert_eq!(
            item,
            json!({"channel": "news", "id": "2", "prev-id": "1", "formats": {
                "http-stream": {"content": "hello\n"},
                "http-response": {"body": "hello\n", "code": 200},
                "ws-message": {"content": "hello"}}})
        );
        let item = built(
            &["news", "hello", "--no-eol", "--format", "http-stream"],
            b"",
        )
        .unwrap();
        assert_eq!(
            item["formats"],
            json!({"http-stream": {"content": "hello"}})
        );
    }

    #[test]
    fn standard_input_is_sent_byte_for_byte() {
        let item = built(&["c"], b"line one\nline two\n").unwrap();
        assert_eq!(
            item["formats"]["http-stream"]["content"],
            "line one\nline two\n"
        );
        assert_eq!(
            item["formats"]["ws-message"]["content"],
            "line one\nline two\n"
        );
        let item = built(&["c", "-"], &[0xff, 0x00]).unwrap();
        assert_eq!(item["formats"]["ws-message"]["content-bin"], "/wA=");
        assert_eq!(item["formats"]["http-response"]["body-bin"], "/wA=");
    }

    #[test]
    fn options_like_pushpin_publish() {
        let item = built(
            &[
                "c", "x", "--sender", "me", "-M", "room=1", "--code", "201", "-H", "X-A: b",
                "--no-seq",
            ],
            b"",
        )
        .unwrap();
        assert_eq!(item["meta"], json!({"sender": "me", "room": "1"}));
        assert_eq!(item["no-seq"], true);
        assert_eq!(
            item["formats"]["http-response"],
            json!({"body": "x\n", "code": 201, "headers": [["X-A", "b"]]})
        );
        let hint = built(&["c", "--hint"], b"").unwrap();
        assert_eq!(
            hint["formats"],
            json!({"http-stream": {"action": "hint"}, "http-response": {"action": "hint"}})
        );
        let close = built(&["c", "--close"], b"").unwrap();
        assert_eq!(
            close["formats"],
            json!({"http-stream": {"action": "close"}, "ws-message": {"action": "close"}})
        );
        let patch = built(
            &["c", "--patch", r#"[{"op":"add","path":"/a","value":1}]"#],
            b"",
        )
        .unwrap();
        assert_eq!(
            patch["formats"]["http-response"]["body-patch"][0]["op"],
            "add"
        );
    }

    #[test]
    fn bad_options_say_why() {
        for (argv, want) in [
            (&["c", "x", "-M", "novalue"][..], "NAME=VALUE"),
            (&["c", "x", "-H", "nocolon"][..], "NAME: VALUE"),
            (&["c", "--patch", "{}"][..], "JSON list"),
            (&["c", "--patch", "nope"][..], "not JSON"),
            (
                &["c", "--hint", "--format", "ws-message"][..],
                "can only be",
            ),
            (&["c", "x", "--code", "42"][..], "42"),
            (&["c", "x", "--hint"][..], "cannot be used"),
            (&["c"][..], "standard input was empty"),
        ] {
            let err = built(argv, b"").unwrap_err();
            assert!(err.contains(want), "{argv:?}: {err}");
        }
    }
}
