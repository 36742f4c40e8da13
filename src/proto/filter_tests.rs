//! Tests of `filter.rs` (a child module, included with `#[path]`).

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
        output_bytes_max: 1_000_000,
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

/// Content filters may not turn a small template into unbounded output: `%(v)s` is 5 bytes and
/// can stand for a meta value of kilobytes.
#[test]
fn output_is_bounded() {
    let sub = owned(&[("v", &"x".repeat(1000)), ("id_format", "%(test)s")]);
    let never = |_: &str| false;
    let prev_id = |_: &str| Some("7");
    let ctx = |max| Context {
        subscription_meta: &sub,
        publish_meta: &[],
        is_subscribed: &never,
        prev_id: &prev_id,
        output_bytes_max: max,
    };
    let content = "%(v)s".repeat(100);
    let got = apply(&[Filter::VarSubst], &ctx(100_000), content.as_bytes());
    assert_eq!(got, Replace("x".repeat(100_000).into_bytes()));
    let got = apply(&[Filter::VarSubst], &ctx(99_999), content.as_bytes());
    let Decision::Error(e) = got else {
        panic!("{got:?}");
    };
    assert!(e.is_limit(), "{e}");
    assert_eq!(
        e.to_string(),
        "var-subst: Output larger than 99999 bytes at position 499"
    );
    // Literal text counts too, and so does build-id's output.
    let long = "y".repeat(50);
    assert!(matches!(
        apply(&[Filter::VarSubst], &ctx(10), format!("{long}%(v)s").as_bytes()),
        Decision::Error(e) if e.is_limit()
    ));
    let ids = "%I".repeat(20);
    assert_eq!(
        apply(&[Filter::BuildId], &ctx(20), ids.as_bytes()),
        Replace("7".repeat(20).into_bytes())
    );
    assert!(matches!(
        apply(&[Filter::BuildId], &ctx(19), ids.as_bytes()),
        Decision::Error(e) if e.is_limit()
    ));
    // Other errors are not the limit.
    let Decision::Error(e) = apply(&[Filter::VarSubst], &ctx(100), b"%(nobody)s") else {
        panic!()
    };
    assert!(!e.is_limit());
}
