//! GRIP subscription filters, applied to one published item for one subscriber.
//!
//! Owns the filter names, the delivery decisions and the `%`-template expansion the content
//! filters use. It does not know where subscriptions, meta or channel lists live: the caller
//! describes the subscriber in a [`Context`]. No I/O, and no allocation unless content changes.
//!
//! Reproduced from Pushpin `src/handler/filter.cpp` (filters), `format.cpp` (template syntax),
//! `idformat.cpp` (`build-id` renderer), `filterstack.cpp` (stacking) and the callers in
//! `httpsession.cpp` / `wssession.cpp`:
//! - `skip-self`: skip when subscription meta `user` and publish meta `sender` are both non-empty
//!   and equal.
//! - `skip-users`: skip when subscription meta `user` is non-empty and appears in publish meta
//!   `skip_users`, a comma-separated list (entries trimmed, empty entries ignored).
//! - `require-sub`: skip when publish meta `require_sub` is non-empty and the subscriber is not
//!   subscribed to that channel.
//! - `build-id`: renders subscription meta `id_format` as a template whose `%(channel)s` is the
//!   subscriber's current prev-id on that channel, then replaces `%I` in the content with that id
//!   and `%(text)I` with `text`; subscription meta `id_encoding=hex` hex-encodes both. Missing
//!   `id_format`, another encoding, or an unknown channel/prev-id is an error. (This is not a
//!   comparison of build ids: it builds the client's next-request id into the content.)
//! - `var-subst`: replaces `%(name)s` with subscription meta `name`; an unknown name is an error.
//! - Template syntax (both): `%%` is `%`; `%X` (ASCII letter) and `%(arg)X` are directives;
//!   inside `(...)` a backslash takes the next byte literally; `%()X` has no argument. Anything
//!   else after `%`, or an unfinished directive, is an error.
//! - Filters that decide are checked before content is touched, so a skip wins over a content
//!   error (`FilterStack::sendAction` precedes `process`); content filters then run in the order
//!   given, each on the previous one's output.
//!
//! Differences: errors come back as [`Decision::Error`] for the caller to act on (Pushpin's
//! HTTP session fails the request; its WebSocket session drops the message, or closes with 1011
//! in debug mode; its newest message-filter stack loses `build-id`/`var-subst` errors and sends
//! empty content). Error positions count from the start of the content. Pushpin's network
//! filters (`http-check`, `http-modify`) are not supported. Unknown names are for the caller to
//! ignore, as Pushpin does ([`Filter::parse`] returns `None`).

use std::borrow::Cow;
use std::fmt;

/// A filter named on a subscription (`Grip-Channel: ch; filter=NAME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Filter {
    /// Skip items the subscriber sent itself.
    SkipSelf,
    /// Skip items whose publisher listed the subscriber's user.
    SkipUsers,
    /// Deliver only to subscribers also subscribed to a channel the publisher names.
    RequireSub,
    /// Build the subscriber's id into the content.
    BuildId,
    /// Substitute subscription meta into the content.
    VarSubst,
}

/// `Grip-Feature` tokens, one per supported filter.
const FEATURE_TOKENS: [&str; 5] = [
    "filter:skip-self",
    "filter:skip-users",
    "filter:require-sub",
    "filter:build-id",
    "filter:var-subst",
];

impl Filter {
    /// Every supported filter.
    pub const ALL: [Filter; 5] = [
        Filter::SkipSelf,
        Filter::SkipUsers,
        Filter::RequireSub,
        Filter::BuildId,
        Filter::VarSubst,
    ];

    /// The filter with this exact (case-sensitive) name, as Pushpin's `Filter::create`.
    pub fn parse(name: &str) -> Option<Filter> {
        Filter::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The filter's name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Filter::SkipSelf => "skip-self",
            Filter::SkipUsers => "skip-users",
            Filter::RequireSub => "require-sub",
            Filter::BuildId => "build-id",
            Filter::VarSubst => "var-subst",
        }
    }

    /// Whether it decides delivery (Pushpin's `MessageDelivery` target).
    pub fn decides_delivery(&self) -> bool {
        matches!(
            self,
            Filter::SkipSelf | Filter::SkipUsers | Filter::RequireSub
        )
    }

    /// Whether it rewrites published content (Pushpin's `MessageContent` target).
    pub fn transforms_content(&self) -> bool {
        matches!(self, Filter::BuildId | Filter::VarSubst)
    }

    /// Whether it also rewrites the hold's initial response body (Pushpin's `ResponseContent`
    /// target): run [`apply`] on that body with just these filters.
    pub fn transforms_response(&self) -> bool {
        matches!(self, Filter::BuildId)
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the filters need to know about one subscriber and one item.
pub struct Context<'a> {
    /// The subscription's meta (`Grip-Set-Meta`, WebSocket `set-meta`), e.g. `user`.
    pub subscription_meta: &'a [(String, String)],
    /// The published item's meta, e.g. `sender`.
    pub publish_meta: &'a [(String, String)],
    /// Whether the subscriber is subscribed to a channel (`require-sub`).
    pub is_subscribed: &'a dyn Fn(&str) -> bool,
    /// The subscriber's current prev-id on a channel it subscribes to, `None` when it has none
    /// or is not subscribed (`build-id`). For an HTTP hold Pushpin has already advanced it to
    /// the item being delivered; WebSocket subscriptions have none.
    pub prev_id: &'a dyn Fn(&str) -> Option<&'a str>,
    /// Largest content (and rendered id) a content filter may produce, in bytes: each `%(name)s`
    /// can turn 9 bytes into a whole meta value, so output is bounded as it is built.
    pub output_bytes_max: usize,
}

impl Context<'_> {
    fn sub_meta(&self, key: &str) -> Option<&str> {
        lookup(self.subscription_meta, key)
    }

    fn pub_meta(&self, key: &str) -> Option<&str> {
        lookup(self.publish_meta, key)
    }
}

fn lookup<'m>(meta: &'m [(String, String)], key: &str) -> Option<&'m str> {
    meta.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The outcome of the filters for one subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Deliver the content as published.
    Deliver,
    /// Do not deliver to this subscriber.
    Skip,
    /// Deliver this transformed content instead.
    Replace(Vec<u8>),
    /// A content filter failed; see the module docs for what Pushpin does then.
    Error(FilterError),
}

/// Why a content filter failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// The content is not a valid template for the filter.
    #[error("{filter}: {error}")]
    Content {
        /// `build-id` or `var-subst`.
        filter: Filter,
        /// Where and what.
        error: TemplateError,
    },
    /// `build-id` without subscription meta `id_format`.
    #[error("build-id: no sub meta 'id_format'")]
    NoIdFormat,
    /// `build-id` whose `id_format` failed to render.
    #[error("build-id: failed to render ID: {0}")]
    RenderId(TemplateError),
    /// `build-id` with an `id_encoding` other than `hex`.
    #[error("build-id: unsupported encoding: {0}")]
    UnsupportedEncoding(String),
}

/// A template error at a byte offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at position {pos}")]
pub struct TemplateError {
    /// Byte offset in the template.
    pub pos: usize,
    /// What is wrong.
    pub kind: TemplateErrorKind,
}

/// What is wrong with a template (texts as Pushpin's `format.cpp`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateErrorKind {
    /// A `%` ends the template.
    #[error("Expected directive after '%'")]
    DirectiveExpected,
    /// A `%(` ends the template.
    #[error("Expected character after '('")]
    FieldExpected,
    /// A backslash ends the template inside `%(...)`.
    #[error("Expected character after '\\'")]
    EscapedCharExpected,
    /// `%(` without a closing `)`.
    #[error("Unterminated field")]
    UnterminatedField,
    /// `%(...)` ends the template.
    #[error("Expected directive after ')'")]
    DirectiveAfterFieldExpected,
    /// A directive the filter does not know.
    #[error("Unknown directive '{}'", char::from(*.0))]
    UnknownDirective(u8),
    /// `%s` without `(name)`.
    #[error("Directive 's' requires argument")]
    ArgumentRequired,
    /// `%(name)s` for a name that has no value.
    #[error("No such variable '{0}'")]
    NoSuchVariable(String),
    /// The output grew past `Context::output_bytes_max` (holdfast's limit; Pushpin has none).
    #[error("Output larger than {0} bytes")]
    OutputTooLarge(usize),
}

impl FilterError {
    /// Whether the output size limit (rather than a bad template or meta) stopped it.
    pub fn is_limit(&self) -> bool {
        let kind = match self {
            FilterError::Content { error, .. } | FilterError::RenderId(error) => &error.kind,
            _ => return false,
        };
        matches!(kind, TemplateErrorKind::OutputTooLarge(_))
    }
}

/// Applies `filters` in order to one item's content for one subscriber.
pub fn apply(filters: &[Filter], ctx: &Context<'_>, content: &[u8]) -> Decision {
    if filters
        .iter()
        .any(|f| f.decides_delivery() && skips(*f, ctx))
    {
        return Decision::Skip;
    }
    let mut current = Cow::Borrowed(content);
    for filter in filters {
        let result = match filter {
            Filter::BuildId => build_id(ctx, &current),
            Filter::VarSubst => var_subst(ctx, &current),
            _ => Ok(None),
        };
        match result {
            Ok(Some(changed)) => current = Cow::Owned(changed),
            Ok(None) => {}
            Err(e) => return Decision::Error(e),
        }
    }
    match current {
        Cow::Borrowed(_) => Decision::Deliver,
        Cow::Owned(changed) => Decision::Replace(changed),
    }
}

/// The `Grip-Feature` tokens for the supported filters (e.g. `filter:skip-self`).
pub fn feature_tokens() -> &'static [&'static str] {
    &FEATURE_TOKENS
}

/// Whether an item's declared `content-filters` match the subscription's content filters, in
/// order (Pushpin: a mismatch is an error for HTTP holds, and drops the message for WebSocket).
pub fn content_filters_match<S: AsRef<str>>(filters: &[Filter], declared: &[S]) -> bool {
    let mut ours = filters.iter().filter(|f| f.transforms_content());
    let mut theirs = declared.iter();
    loop {
        match (ours.next(), theirs.next()) {
            (None, None) => return true,
            (Some(f), Some(d)) if f.name() == d.as_ref() => {}
            _ => return false,
        }
    }
}

/// Whether a deciding filter skips this subscriber.
fn skips(filter: Filter, ctx: &Context<'_>) -> bool {
    let user = ctx.sub_meta("user").filter(|u| !u.is_empty());
    match filter {
        Filter::SkipSelf => {
            let sender = ctx.pub_meta("sender").filter(|s| !s.is_empty());
            user.is_some() && user == sender
        }
        Filter::SkipUsers => user.is_some_and(|user| {
            let list = ctx.pub_meta("skip_users").unwrap_or("");
            list.split(',').map(str::trim).any(|u| u == user)
        }),
        Filter::RequireSub => ctx
            .pub_meta("require_sub")
            .is_some_and(|ch| !ch.is_empty() && !(ctx.is_subscribed)(ch)),
        Filter::BuildId | Filter::VarSubst => false,
    }
}

/// `var-subst`: `%(name)s` → subscription meta. `None` when the content has no directive.
fn var_subst(ctx: &Context<'_>, content: &[u8]) -> Result<Option<Vec<u8>>, FilterError> {
    if !content.contains(&b'%') {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(content.len());
    let substitute = |directive: u8, arg: Option<&[u8]>, out: &mut Vec<u8>| {
        if directive != b's' {
            return Err(TemplateErrorKind::UnknownDirective(directive));
        }
        let name = arg.ok_or(TemplateErrorKind::ArgumentRequired)?;
        let value = std::str::from_utf8(name)
            .ok()
            .and_then(|name| ctx.sub_meta(name));
        out.extend_from_slice(value.ok_or_else(|| no_such_variable(name))?.as_bytes());
        Ok(())
    };
    let max = ctx.output_bytes_max;
    expand(content, &mut out, max, substitute).map_err(|error| FilterError::Content {
        filter: Filter::VarSubst,
        error,
    })?;
    Ok(Some(out))
}

/// `build-id`: `%I` → the rendered id, `%(text)I` → `text`. `None` when the content has no
/// directive (the id format is still checked, as Pushpin does).
fn build_id(ctx: &Context<'_>, content: &[u8]) -> Result<Option<Vec<u8>>, FilterError> {
    let format = ctx.sub_meta("id_format").ok_or(FilterError::NoIdFormat)?;
    let hex = match ctx.sub_meta("id_encoding") {
        None => false,
        Some("hex") => true,
        Some(other) => return Err(FilterError::UnsupportedEncoding(other.to_owned())),
    };
    let render = |directive: u8, arg: Option<&[u8]>, out: &mut Vec<u8>| {
        if directive != b's' {
            return Err(TemplateErrorKind::UnknownDirective(directive));
        }
        let name = arg.ok_or(TemplateErrorKind::ArgumentRequired)?;
        let value = std::str::from_utf8(name)
            .ok()
            .and_then(|name| (ctx.prev_id)(name));
        out.extend_from_slice(value.ok_or_else(|| no_such_variable(name))?.as_bytes());
        Ok(())
    };
    // Rendered even when the content has no directive, so a bad format is reported as Pushpin
    // does (`BuildIdFilter::ensureInit` runs on every update).
    let mut id = Vec::new();
    let max = ctx.output_bytes_max;
    expand(format.as_bytes(), &mut id, max, render).map_err(FilterError::RenderId)?;
    if !content.contains(&b'%') {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(content.len() + id.len());
    let insert = |directive: u8, arg: Option<&[u8]>, out: &mut Vec<u8>| {
        if directive != b'I' {
            return Err(TemplateErrorKind::UnknownDirective(directive));
        }
        put_id(out, arg.unwrap_or(&id), hex);
        Ok(())
    };
    expand(content, &mut out, max, insert).map_err(|error| FilterError::Content {
        filter: Filter::BuildId,
        error,
    })?;
    Ok(Some(out))
}

fn put_id(out: &mut Vec<u8>, id: &[u8], hex: bool) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    if !hex {
        out.extend_from_slice(id);
        return;
    }
    for b in id {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 0x0f)]);
    }
}

fn no_such_variable(name: &[u8]) -> TemplateErrorKind {
    TemplateErrorKind::NoSuchVariable(String::from_utf8_lossy(name).into_owned())
}

/// Expands `%` directives in `template` into `out` (Pushpin's `Format::process`); `handle` gets
/// each directive's letter and `(argument)`, and appends the replacement. Stops with
/// `OutputTooLarge` once `out` passes `max` bytes (by at most one replacement).
fn expand(
    template: &[u8],
    out: &mut Vec<u8>,
    max: usize,
    mut handle: impl FnMut(u8, Option<&[u8]>, &mut Vec<u8>) -> Result<(), TemplateErrorKind>,
) -> Result<(), TemplateError> {
    let fail = |pos, kind| Err(TemplateError { pos, kind });
    let mut n = 0;
    while let Some(offset) = template[n..].iter().position(|&c| c == b'%') {
        let marker = n + offset;
        out.extend_from_slice(&template[n..marker]);
        if out.len() > max {
            return fail(marker, TemplateErrorKind::OutputTooLarge(max));
        }
        let Some(&c) = template.get(marker + 1) else {
            return fail(marker, TemplateErrorKind::DirectiveExpected);
        };
        let (directive_pos, arg) = match c {
            b'%' => {
                out.push(b'%');
                n = marker + 2;
                continue;
            }
            b'(' => field(template, marker + 1)?,
            c if c.is_ascii_alphabetic() => (marker + 1, None),
            c => return fail(marker + 1, TemplateErrorKind::UnknownDirective(c)),
        };
        let directive = template[directive_pos];
        if let Err(kind) = handle(directive, arg.as_deref(), out) {
            return fail(directive_pos, kind);
        }
        if out.len() > max {
            return fail(directive_pos, TemplateErrorKind::OutputTooLarge(max));
        }
        n = directive_pos + 1;
    }
    out.extend_from_slice(&template[n..]);
    if out.len() > max {
        return fail(template.len(), TemplateErrorKind::OutputTooLarge(max));
    }
    Ok(())
}

/// A directive's position and its unescaped argument.
type Directive<'t> = (usize, Option<Cow<'t, [u8]>>);

/// Reads `(arg)X` starting at the `(`; returns the directive's position and the unescaped
/// argument (`None` when empty, as in Pushpin).
fn field(template: &[u8], open: usize) -> Result<Directive<'_>, TemplateError> {
    let fail = |pos, kind| Err(TemplateError { pos, kind });
    if open + 1 >= template.len() {
        return fail(open, TemplateErrorKind::FieldExpected);
    }
    let start = open + 1;
    let mut escaped = false;
    let mut n = start;
    let close = loop {
        match template.get(n) {
            None => return fail(open, TemplateErrorKind::UnterminatedField),
            Some(b'\\') if n + 1 >= template.len() => {
                return fail(n, TemplateErrorKind::EscapedCharExpected);
            }
            Some(b'\\') => {
                escaped = true;
                n += 2;
            }
            Some(b')') => break n,
            Some(_) => n += 1,
        }
    };
    if close + 1 >= template.len() {
        return fail(close, TemplateErrorKind::DirectiveAfterFieldExpected);
    }
    let raw = &template[start..close];
    let arg = match (raw.is_empty(), escaped) {
        (true, _) => None,
        (false, false) => Some(Cow::Borrowed(raw)),
        (false, true) => Some(Cow::Owned(unescape(raw))),
    };
    Ok((close + 1, arg))
}

fn unescape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'\\' => out.extend(bytes.next()),
            b => out.push(b),
        }
    }
    out
}

#[cfg(test)]
#[path = "filter_tests.rs"]
mod tests;
