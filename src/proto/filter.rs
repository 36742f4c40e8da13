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
    expand(content, &mut out, substitute).map_err(|error| FilterError::Content {
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
    expand(format.as_bytes(), &mut id, render).map_err(FilterError::RenderId)?;
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
    expand(content, &mut out, insert).map_err(|error| FilterError::Content {
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
/// each directive's letter and `(argument)`, and appends the replacement.
fn expand(
    template: &[u8],
    out: &mut Vec<u8>,
    mut handle: impl FnMut(u8, Option<&[u8]>, &mut Vec<u8>) -> Result<(), TemplateErrorKind>,
) -> Result<(), TemplateError> {
    let fail = |pos, kind| Err(TemplateError { pos, kind });
    let mut n = 0;
    while let Some(offset) = template[n..].iter().position(|&c| c == b'%') {
        let marker = n + offset;
        out.extend_from_slice(&template[n..marker]);
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
        n = directive_pos + 1;
    }
    out.extend_from_slice(&template[n..]);
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
mod tests {
    use super::*;
    use Decision::{Deliver, Replace, Skip};
    use TemplateErrorKind as K;

    type Pairs<'a> = &'a [(&'a str, &'a str)];
    /// The subscriber's channels and their prev-ids.
    type Channels<'a> = &'a [(&'a str, Option<&'a str>)];

    fn owned(pairs: Pairs<'_>) -> Vec<(String, String)> {
        let own = |(k, v): &(&str, &str)| ((*k).to_owned(), (*v).to_owned());
        pairs.iter().map(own).collect()
    }

    fn run(
        filters: &[Filter],
        sub: Pairs<'_>,
        publ: Pairs<'_>,
        chans: Channels<'_>,
        content: &str,
    ) -> Decision {
        let (sub, publ) = (owned(sub), owned(publ));
        let is_subscribed = |c: &str| chans.iter().any(|(n, _)| *n == c);
        let prev_id = |c: &str| chans.iter().find(|(n, _)| *n == c).and_then(|(_, p)| *p);
        let ctx = Context {
            subscription_meta: &sub,
            publish_meta: &publ,
            is_subscribed: &is_subscribed,
            prev_id: &prev_id,
        };
        apply(filters, &ctx, content.as_bytes())
    }

    /// One filter, no channels.
    fn one(filter: Filter, sub: Pairs<'_>, publ: Pairs<'_>, content: &str) -> Decision {
        run(&[filter], sub, publ, &[("test", None)], content)
    }

    fn replaced(text: &str) -> Decision {
        Replace(text.as_bytes().to_vec())
    }

    fn content_error(filter: Filter, pos: usize, kind: TemplateErrorKind) -> Decision {
        let error = TemplateError { pos, kind };
        Decision::Error(FilterError::Content { filter, error })
    }

    #[test]
    fn names_round_trip_exactly() {
        for f in Filter::ALL {
            assert_eq!(Filter::parse(f.name()), Some(f));
            assert_eq!(f.to_string(), f.name());
        }
        for name in ["Skip-Self", "skip_self", "", "http-check", "http-modify"] {
            assert_eq!(Filter::parse(name), None, "{name}");
        }
        let expected: Vec<String> = Filter::ALL.iter().map(|f| format!("filter:{f}")).collect();
        assert_eq!(feature_tokens(), expected);
    }

    #[test]
    fn targets_match_pushpin() {
        let deciding: Vec<_> = Filter::ALL
            .into_iter()
            .filter(Filter::decides_delivery)
            .collect();
        assert_eq!(
            deciding,
            [Filter::SkipSelf, Filter::SkipUsers, Filter::RequireSub]
        );
        let content: Vec<_> = Filter::ALL
            .into_iter()
            .filter(Filter::transforms_content)
            .collect();
        assert_eq!(content, [Filter::BuildId, Filter::VarSubst]);
        assert!(Filter::BuildId.transforms_response() && !Filter::VarSubst.transforms_response());
    }

    #[test]
    fn no_filters_deliver_as_is() {
        assert_eq!(run(&[], &[], &[], &[], "hello %(x)s"), Deliver);
    }

    #[test]
    fn skip_self_compares_user_and_sender() {
        let f = Filter::SkipSelf;
        assert_eq!(
            one(f, &[("user", "alice")], &[("sender", "alice")], "x"),
            Skip
        );
        assert_eq!(
            one(f, &[("user", "alice")], &[("sender", "bob")], "x"),
            Deliver
        );
        assert_eq!(one(f, &[("user", "alice")], &[], "x"), Deliver);
        assert_eq!(one(f, &[], &[("sender", "alice")], "x"), Deliver);
        assert_eq!(one(f, &[("user", "")], &[("sender", "")], "x"), Deliver);
    }

    #[test]
    fn skip_users_reads_a_trimmed_comma_list() {
        let f = Filter::SkipUsers;
        let list = &[("skip_users", " bob, alice ,,carol")][..];
        assert_eq!(one(f, &[("user", "alice")], list, "x"), Skip);
        assert_eq!(one(f, &[("user", "carol")], list, "x"), Skip);
        assert_eq!(one(f, &[("user", "dave")], list, "x"), Deliver);
        assert_eq!(one(f, &[("user", "ali")], list, "x"), Deliver);
        assert_eq!(one(f, &[], list, "x"), Deliver);
        assert_eq!(
            one(f, &[("user", "")], &[("skip_users", ",")], "x"),
            Deliver
        );
        assert_eq!(one(f, &[("user", "alice")], &[], "x"), Deliver);
    }

    #[test]
    fn require_sub_needs_the_other_channel() {
        let f = &[Filter::RequireSub][..];
        let both = &[("a", None), ("b", None)][..];
        let only_a = &[("a", None)][..];
        assert_eq!(run(f, &[], &[("require_sub", "b")], both, "x"), Deliver);
        assert_eq!(run(f, &[], &[("require_sub", "b")], only_a, "x"), Skip);
        assert_eq!(run(f, &[], &[("require_sub", "")], only_a, "x"), Deliver);
        assert_eq!(run(f, &[], &[], only_a, "x"), Deliver);
    }

    #[test]
    fn var_subst_substitutes_subscription_meta() {
        let f = Filter::VarSubst;
        let sub = &[
            ("user", "alice"),
            ("empty", ""),
            ("food\\fruit(type)", "apples"),
        ][..];
        assert_eq!(one(f, sub, &[], "hello %(user)s"), replaced("hello alice"));
        assert_eq!(one(f, sub, &[], "no directives"), Deliver);
        assert_eq!(one(f, sub, &[], "[%(empty)s] 10%%"), replaced("[] 10%"));
        let escaped = r"I eat %(food\\fruit(type\))s";
        assert_eq!(one(f, sub, &[], escaped), replaced("I eat apples"));
        // Publish meta is not a source of variables.
        let unknown = one(f, sub, &[("sender", "x")], "hi %(sender)s");
        assert_eq!(
            unknown,
            content_error(f, 12, K::NoSuchVariable("sender".into()))
        );
    }

    #[test]
    fn template_errors_match_pushpin() {
        let f = Filter::VarSubst;
        let sub = &[("user", "alice")][..];
        let cases: &[(&str, usize, TemplateErrorKind)] = &[
            ("ab%", 2, K::DirectiveExpected),
            ("%(", 1, K::FieldExpected),
            ("%(user", 1, K::UnterminatedField),
            ("%(user)", 6, K::DirectiveAfterFieldExpected),
            ("%(us\\", 4, K::EscapedCharExpected),
            ("a%!", 2, K::UnknownDirective(b'!')),
            ("%(user)I", 7, K::UnknownDirective(b'I')),
            ("%s", 1, K::ArgumentRequired),
            ("%()s", 3, K::ArgumentRequired),
            ("%(nobody)s", 9, K::NoSuchVariable("nobody".into())),
        ];
        for (content, pos, kind) in cases {
            let got = one(f, sub, &[], content);
            assert_eq!(got, content_error(f, *pos, kind.clone()), "{content}");
        }
        let Decision::Error(e) = one(f, sub, &[], "hi %(nobody)s") else {
            panic!("expected an error");
        };
        assert_eq!(
            e.to_string(),
            "var-subst: No such variable 'nobody' at position 12"
        );
    }

    #[test]
    fn build_id_renders_the_id_from_prev_ids() {
        let f = &[Filter::BuildId][..];
        let chans = &[("test", Some("a")), ("other", Some("C3PO"))][..];
        let plain = &[("id_format", "%(other)s")][..];
        let hex = &[("id_format", "%(other)s"), ("id_encoding", "hex")][..];
        // Pushpin idformattest.cpp renderContent.
        let none = "This content has no directives.";
        assert_eq!(run(f, plain, &[], chans, none), Deliver);
        let with_id = "The ID is %I.";
        assert_eq!(
            run(f, plain, &[], chans, with_id),
            replaced("The ID is C3PO.")
        );
        assert_eq!(
            run(f, hex, &[], chans, with_id),
            replaced("The ID is 4333504f.")
        );
        let literal = "The ID is %(R2D2)I.";
        assert_eq!(
            run(f, hex, &[], chans, literal),
            replaced("The ID is 52324432.")
        );
        assert_eq!(
            run(f, plain, &[], chans, literal),
            replaced("The ID is R2D2.")
        );
        let two = &[("id_format", "%(test)s-%(other)s")][..];
        assert_eq!(run(f, two, &[], chans, "id: %I"), replaced("id: a-C3PO"));
    }

    #[test]
    fn build_id_renders_id_formats_like_pushpin() {
        // Pushpin idformattest.cpp renderId: the template variables are the prev-ids.
        let f = &[Filter::BuildId][..];
        let chans = &[
            ("name", Some("Alice")),
            ("food\\fruit(type)", Some("apples")),
        ][..];
        let fixed = &[("id_format", "This template has no directives.")][..];
        let got = run(f, fixed, &[], chans, "%I");
        assert_eq!(got, replaced("This template has no directives."));
        let format = r"My name is %(name)s and I eat %(food\\fruit(type\))s 10%% of the time.";
        let got = run(f, &[("id_format", format)], &[], chans, "%I");
        assert_eq!(
            got,
            replaced("My name is Alice and I eat apples 10% of the time.")
        );
    }

    #[test]
    fn build_id_errors() {
        let f = &[Filter::BuildId][..];
        let chans = &[("test", Some("a")), ("ws", None)][..];
        let error = |e| Decision::Error(e);
        // Checked even when the content has no directive.
        assert_eq!(
            run(f, &[], &[], chans, "plain"),
            error(FilterError::NoIdFormat)
        );
        let b64 = &[("id_format", "%(test)s"), ("id_encoding", "base64")][..];
        let unsupported = FilterError::UnsupportedEncoding("base64".into());
        assert_eq!(run(f, b64, &[], chans, "%I"), error(unsupported));
        // A channel without a prev-id (every WebSocket subscription) is no variable.
        let ws = &[("id_format", "%(ws)s")][..];
        let render = TemplateError {
            pos: 5,
            kind: K::NoSuchVariable("ws".into()),
        };
        let got = run(f, ws, &[], chans, "plain");
        assert_eq!(got, error(FilterError::RenderId(render)));
        let Decision::Error(e) = got else {
            panic!("expected an error");
        };
        assert_eq!(
            e.to_string(),
            "build-id: failed to render ID: No such variable 'ws' at position 5"
        );
        let ok = &[("id_format", "%(test)s")][..];
        let got = run(f, ok, &[], chans, "%s");
        assert_eq!(
            got,
            content_error(Filter::BuildId, 1, K::UnknownDirective(b's'))
        );
        assert_eq!(
            FilterError::NoIdFormat.to_string(),
            "build-id: no sub meta 'id_format'"
        );
    }

    #[test]
    fn pushpin_message_filters_vector() {
        // Pushpin filtertest.cpp messageFilters.
        let filters = &[Filter::SkipSelf, Filter::VarSubst][..];
        let sub = &[("user", "alice")][..];
        let chans = &[("test", None)][..];
        let got = run(filters, sub, &[], chans, "hello %(user)s");
        assert_eq!(got, replaced("hello alice"));
        let got = run(
            filters,
            sub,
            &[("sender", "alice")],
            chans,
            "hello %(user)s",
        );
        assert_eq!(got, Skip);
    }

    #[test]
    fn a_skip_wins_over_a_content_error() {
        let filters = &[Filter::VarSubst, Filter::SkipSelf][..];
        let sub = &[("user", "alice")][..];
        let got = run(filters, sub, &[("sender", "alice")], &[], "%(missing)s");
        assert_eq!(got, Skip);
    }

    #[test]
    fn content_filters_chain_in_order() {
        let sub = &[("id_format", "%(test)s"), ("user", "alice")][..];
        let chans = &[("test", Some("a"))][..];
        let subst_then_id = &[Filter::VarSubst, Filter::BuildId][..];
        let got = run(subst_then_id, sub, &[], chans, "%(user)s at %%I");
        assert_eq!(got, replaced("alice at a"));
        let id_then_subst = &[Filter::BuildId, Filter::VarSubst][..];
        let got = run(id_then_subst, sub, &[], chans, "%(user)s at %%I");
        assert_eq!(
            got,
            content_error(Filter::BuildId, 7, K::UnknownDirective(b's'))
        );
        let all = &[
            Filter::SkipUsers,
            Filter::RequireSub,
            Filter::BuildId,
            Filter::VarSubst,
        ][..];
        assert_eq!(run(all, sub, &[], chans, "nothing to do"), Deliver);
    }

    #[test]
    fn declared_content_filters_must_match_in_order() {
        use Filter::*;
        let subscribed = [SkipSelf, VarSubst, RequireSub, BuildId];
        assert!(content_filters_match(
            &subscribed,
            &["var-subst", "build-id"]
        ));
        assert!(!content_filters_match(
            &subscribed,
            &["build-id", "var-subst"]
        ));
        assert!(!content_filters_match(&subscribed, &["var-subst"]));
        assert!(!content_filters_match(&subscribed, &[] as &[&str]));
        assert!(content_filters_match(&[SkipSelf], &[] as &[&str]));
        assert!(!content_filters_match(&[VarSubst], &["var-subst", "x"]));
        assert!(content_filters_match(&[], &[] as &[String]));
    }
}
