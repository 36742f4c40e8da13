//! Unit tests of `routes` (a sibling file: the module and its tests pass 800 lines).

use super::*;

fn one(text: &str) -> Route {
    let mut table = RouteTable::parse(text).unwrap();
    assert_eq!(table.routes.len(), 1);
    table.routes.remove(0)
}

/// Renders a route back in routes syntax, normalised: fixed option order, `sig_key` in hex,
/// IPv6 without brackets, `proto` as its Debug name.
fn show(r: &Route) -> String {
    let mut out = r.host.clone().unwrap_or_else(|| "*".into());
    let flag = |on: bool| on.then(String::new);
    let hex = |key: &Vec<u8>| key.iter().map(|b| format!("{b:02x}")).collect();
    let opts = [
        ("id", r.id.clone()),
        ("path_beg", r.path_beg.clone()),
        (
            "ssl",
            r.ssl.map(|on| if on { "yes" } else { "no" }.to_string()),
        ),
        ("proto", r.proto.map(|p| format!("{p:?}"))),
        ("sig_iss", r.sig_iss.clone()),
        ("sig_key", r.sig_key.as_ref().map(hex)),
        ("prefix", Some(r.prefix.clone()).filter(|p| !p.is_empty())),
        ("as_host", r.as_host.clone()),
        (
            "path_rem",
            Some(r.path_rem).filter(|&n| n > 0).map(|n| n.to_string()),
        ),
        ("replace_beg", r.replace_beg.clone()),
        ("no_grip", flag(r.no_grip)),
        ("debug", flag(r.debug)),
    ];
    for (name, value) in opts {
        push_opt(&mut out, name, value);
    }
    for t in &r.targets {
        out += &format!(" {}:{}", t.host, t.port);
        push_opt(&mut out, "over_http", flag(t.over_http));
        push_opt(&mut out, "host", t.host_header.clone());
        for sub in &t.subs {
            push_opt(&mut out, "sub", Some(sub.clone()));
        }
        push_opt(&mut out, "ssl", flag(t.ssl));
        push_opt(&mut out, "insecure", flag(t.insecure));
        push_opt(&mut out, "trust_connect_host", flag(t.trust_connect_host));
    }
    out
}

fn push_opt(out: &mut String, name: &str, value: Option<String>) {
    match value {
        Some(v) if v.is_empty() => *out += &format!(",{name}"),
        Some(v) => *out += &format!(",{name}={v}"),
        None => {}
    }
}

/// Each case is `text|needle|...`: parsing `text` must fail on its last line, and the
/// message must name that line and contain every needle.
fn assert_errs(cases: &[&str]) {
    for case in cases {
        let mut parts = case.split('|');
        let text = parts.next().unwrap();
        let msg = RouteTable::parse(text).unwrap_err().to_string();
        let line = format!("line {}:", text.lines().count());
        assert!(msg.contains(&line), "{case}: {msg}");
        for needle in parts {
            assert!(msg.contains(needle), "{case}: {msg} lacks {needle}");
        }
    }
}

/// Each case is `host path flags expected`: flags `t` = TLS, `w` = WebSocket, `-` = neither;
/// expected is the chosen route's first target host, or `none`.
fn assert_picks(routes: &str, cases: &[&str]) {
    let table = RouteTable::parse(routes).unwrap();
    for case in cases {
        let f: Vec<&str> = case.split(' ').collect();
        let route = table.find(f[0], f[1], f[2].contains('t'), f[2].contains('w'));
        let got = route.map_or("none", |r| r.targets[0].host.as_str());
        assert_eq!(got, f[3], "{case}");
    }
}

#[test]
fn parses_examples_and_every_option() {
    // Pairs: a routes line, then the route it parses to, as rendered by `show`.
    let cases = [
        "* localhost:8000",
        "* localhost:8000",
        "*,path_beg=/api localhost:9000,over_http",
        "*,path_beg=/api localhost:9000,over_http",
        "example.com localhost:8000,over_http",
        "example.com localhost:8000,over_http",
        "*,path_beg=/ws,proto=ws 127.0.0.1:9000,over_http 127.0.0.1:9001,over_http",
        "*,path_beg=/ws,proto=Ws 127.0.0.1:9000,over_http 127.0.0.1:9001,over_http",
        "*,id=main,sig_iss=foo,sig_key=base64:aGVsbG8= [::1]:8080,host=api.example.com",
        "*,id=main,sig_iss=foo,sig_key=68656c6c6f ::1:8080,host=api.example.com",
        "Example.COM a:1",
        "example.com a:1",
        "[::1] a:1",
        "::1 a:1",
        "*,sig_key=base64:aGVsbG8 a:1", // padding is optional
        "*,sig_key=68656c6c6f a:1",
        "*,sig_key=base64:AP8= a:1",
        "*,sig_key=00ff a:1",
        "*,sig_key=key a:1", // no prefix: the UTF-8 bytes
        "*,sig_key=6b6579 a:1",
        "*,ssl=yes,proto=http,prefix=p-,as_host=o.test:81,path_rem=3,no_grip,debug a:1",
        "*,ssl=yes,proto=Http,prefix=p-,as_host=o.test:81,path_rem=3,no_grip,debug a:1",
        "*,ssl=no,debug= a:1",
        "*,ssl=no,debug a:1",
        "*,path_beg=/api,replace_beg=/v2 a:1", // replace_beg cuts path_beg
        "*,path_beg=/api,path_rem=4,replace_beg=/v2 a:1",
        "*,replace_beg=/x a:1",
        "*,replace_beg=/x a:1",
        "* a:1,sub=news,sub=sport,host=h.test b:2",
        "* a:1,host=h.test,sub=news,sub=sport b:2",
        "*,prefix=\"a b,c#d \\\"q\\\" \\\\\"\tx:1",
        "*,prefix=a b,c#d \"q\" \\ x:1",
        "*,prefix=x\"y z\" a:1",
        "*,prefix=xy z a:1",
        "\t*,path_beg=/a   b:1\t c:2  # comment",
        "*,path_beg=/a b:1 c:2",
        "* c:1,sub=x#y",
        "* c:1,sub=x",
    ];
    for pair in cases.chunks(2) {
        assert_eq!(show(&one(pair[0])), pair[1], "{}", pair[0]);
    }
}

#[test]
fn comments_blank_lines_and_line_numbers() {
    let text = "# top\n\n   \n* a:1 # trailing\r\nx.test b:2#tight\n\t# indented\n";
    let lines: Vec<usize> = RouteTable::parse(text)
        .unwrap()
        .routes
        .iter()
        .map(|r| r.line)
        .collect();
    assert_eq!(lines, [4, 5]);
    assert_eq!(RouteTable::parse(""), Ok(RouteTable::default()));
    assert_eq!(
        RouteTable::parse("\u{feff}# only a comment\n"),
        Ok(RouteTable::default())
    );
    // `#` ends the line even inside a value, so this route has no target.
    assert_errs(&["*,path_beg=/a#b c:1|at least one target"]);
}

#[test]
fn precedence_path_proto_ssl_order() {
    let routes = "*,path_beg=/api/long a:1\n* any:1\n*,path_beg=/api api:1\n*,proto=ws ws:1\n\
                  *,path_beg=/tls,ssl=yes tls:1\n*,path_beg=/tls plain:1\n";
    let cases = [
        "h /api/long/x - a",          // the longer path_beg wins, whatever the order
        "h /api/x - api",             // a shorter one still beats none
        "h /other - any",             // the catch-all
        "h /api/long w ws",           // a proto condition beats any path_beg
        "h /tls/x t tls",             // setting ssl breaks a path_beg tie
        "h /tls/x - plain",           // and filters out the other kind
        "h /api/x?q=/api/long - api", // the query is not part of the path
    ];
    assert_picks(routes, &cases);
    // Pushpin quirk, kept: a later route setting ssl beats an earlier longer path_beg.
    assert_picks(
        "*,path_beg=/a/b long:1\n*,path_beg=/a,ssl=yes short:1",
        &["h /a/b t short"],
    );
    // On a full tie the earlier line wins.
    assert_picks(
        "*,ssl=yes first:1\n*,ssl=no second:1\n* third:1",
        &["h / t first"],
    );
    assert_picks("*,proto=http h:1\n*,proto=ws w:1", &["h / - h", "h / w w"]);
    assert_picks(
        "*,proto=ws w:1\n*,path_beg=/a?b q:1",
        &["h / - none", "h /a?b - none"],
    );
}

#[test]
fn precedence_host_specific_over_catch_all() {
    let routes = "* any:1\n*,proto=ws ws:1\nexample.com ex:1\nonly.test,path_beg=/x only:1\n\
                  ::1 six:1";
    let cases = [
        "example.com /a w ex",     // host-specific beats a more specific `*` route
        "EXAMPLE.com:8443 / t ex", // port and case are ignored
        "only.test /x/1 - only",   //
        "only.test /y - none",     // a named host never falls back to `*`
        "other.test:80 /y - any",  //
        "[::1]:7999 / - six",      // IPv6 Host header
        "[::1] / - six",           //
    ];
    assert_picks(routes, &cases);
    assert_picks("example.com ex:1", &["other.test / - none"]);
    assert_picks("", &["h / - none"]);
}

#[test]
fn origin_path_rewrites() {
    let cases = [
        ("* a:1", "/x/y?q=1", "/x/y?q=1"),
        (
            "*,path_beg=/api,path_rem=4 a:1",
            "/api/items?q=/api",
            "/items?q=/api",
        ),
        ("*,path_beg=/api,path_rem=4 a:1", "/api", "/"),
        ("*,path_beg=/api,path_rem=4 a:1", "/api?x", "/?x"),
        ("*,path_rem=9 a:1", "/a", "/"),
        (
            "*,path_beg=/api,replace_beg=/v2 a:1",
            "/api/items?z",
            "/v2/items?z",
        ),
        ("*,path_beg=/api/,replace_beg= a:1", "/api/x", "x"),
        ("*,replace_beg=/pre a:1", "/x", "/pre/x"),
    ];
    for (route, path, want) in cases {
        assert_eq!(one(route).origin_path(path), want, "{route} {path}");
    }
}

#[test]
fn syntax_missing_target_and_host_errors() {
    assert_errs(&[
        "* a:1\n*,prefix=\"open b:1|unterminated quote|*,prefix=\"open b:1",
        "*,prefix=\"a\\n\" b:1|bad escape",
        "*, a:1|expected an option after `,`",
        "* a:1,|expected an option after `,`",
        "\n\n*,=x a:1|empty option name",
        "\n*|at least one target|`*`",
        "*,path_beg=/x|at least one target",
        "path_beg=/x a:1|no host|path_beg=/x",
        "example.com:80 a:1|`example.com:80`|port",
        "*.example.com a:1|`*.example.com`|wildcard",
        "[zz] a:1|`[zz]`|IPv6",
        "[::1 a:1|`[::1`|missing `]`",
    ]);
}

#[test]
fn bad_target_errors() {
    let cases = [
        "localhost|port is required",
        "a:0|invalid port",
        "a:70000|invalid port",
        "a:+80|invalid port",
        "a:|invalid port",
        ":80|empty host",
        "::1:80|brackets",
        "[zz]:80|IPv6",
        "[::1]80|[v6addr]:port",
        "[::1:80|missing `]`",
    ];
    for case in cases {
        let (target, needle) = case.split_once('|').unwrap();
        assert_errs(&[&format!("# c\n* {target},over_http|{needle}|`{target}`")]);
    }
    assert_errs(&["* over_http=1|missing host:port"]);
}

#[test]
fn unsupported_targets_and_options() {
    let unsupported = "not supported by holdfast";
    for t in ["test", "zhttp/tcp://x:1", "zhttpreq/ipc://y"] {
        assert_errs(&[&format!("* {t}|`{t}`|{unsupported}")]);
    }
    let condition = "aco session sockjs=/s sockjs_as_path=/x header=X-A:b orig_headers \
                     log_level=debug jsonp_cb=cb jsonp_mode=basic";
    for opt in condition.split(' ') {
        let name = opt.split('=').next().unwrap();
        assert_errs(&[&format!(
            "*,{opt} a:1|condition option `{name}`|{unsupported}"
        )]);
    }
    let target = "untrusted one_event ipc_file_mode=777";
    for opt in target.split(' ') {
        let name = opt.split('=').next().unwrap();
        assert_errs(&[&format!(
            "\n* a:1,{opt}|target option `{name}`|{unsupported}"
        )]);
    }
    assert_errs(&["*,sig_key=file:key.pem a:1|`sig_key=file:`|not supported by holdfast"]);
}

#[test]
fn tls_targets() {
    let t = RouteTable::parse("* a:443,ssl,host=api.test b:8443,ssl,insecure,trust_connect_host\n")
        .unwrap();
    let [a, b] = &t.routes[0].targets[..] else {
        panic!("two targets")
    };
    assert!(a.ssl && !a.insecure && !a.trust_connect_host);
    assert!(b.ssl && b.insecure && b.trust_connect_host);
    assert_errs(&[
        "* a:1,insecure|`insecure`|needs `ssl`",
        "* a:1,trust_connect_host|`trust_connect_host`|needs `ssl`",
        "* a:1,ssl=yes|`ssl`|flag",
    ]);
}

#[test]
fn unknown_options() {
    assert_errs(&[
        "*,over_http a:1|unknown condition option `over_http`",
        "* a:1,path_beg=/x|unknown target option `path_beg`",
        "\n* a:1,bogus=1|unknown target option `bogus`",
    ]);
}

#[test]
fn invalid_values() {
    let cases = [
        "ssl=maybe|yes or no",
        "ssl|yes or no",
        "proto=tcp|http or ws",
        "path_rem=abc|integer",
        "path_rem=-1|integer",
        "path_rem=99999999999999999999999|integer",
        "debug=yes|flag",
        "no_grip=no|flag",
        "sig_key=base64:!!!|base64",
        "sig_key=base64:|base64",
        "sig_key=|non-empty",
        "path_beg=|non-empty",
        "id|non-empty",
        "sig_iss=|non-empty",
        "as_host=|non-empty",
    ];
    for case in cases {
        let name = case.split(['=', '|']).next().unwrap();
        let (opt, needle) = case.split_once('|').unwrap();
        assert_errs(&[&format!("*,{opt} a:1|`{name}`|invalid value|{needle}")]);
    }
    for opt in ["host=", "sub=", "sub", "over_http=no"] {
        let name = opt.split('=').next().unwrap();
        assert_errs(&[&format!("* a:1,{opt}|`{name}`|invalid value")]);
    }
}

#[test]
fn duplicate_options_and_conditions() {
    assert_errs(&[
        "*,path_beg=/a,path_beg=/b a:1|`path_beg`|more than once",
        "* a:1,host=x,host=y|`host`|more than once",
        "*,path_rem=2,replace_beg=/x a:1|`path_rem`|`replace_beg`|cannot be combined",
        "*,path_beg=/a x:1\nexample.com y:1\n*,path_beg=/a z:1|duplicate condition|line 1)|z:1",
        "A.test x:1\na.test y:1|duplicate condition|same as line 1",
    ]);
    // Different ssl, proto or host is not a duplicate.
    let t = RouteTable::parse("* a:1\n*,ssl=yes a:1\n*,proto=ws a:1\nh.test a:1\n").unwrap();
    assert_eq!(t.routes.len(), 4);
}

#[test]
fn routes_errors_do_not_quote_sig_keys() {
    for text in [
        "*,sig_key=S3CRET",
        "*,sig_key=base64:S3CRET!! a:1",
        "*,sig_key=\"S3CRET a:1",
        "*,sig_key=S3CRET a:1\n*,sig_key=S3CRET a:1",
        "=x,sig_key=S3CRET a:1",
    ] {
        let err = RouteTable::parse(text).unwrap_err().to_string();
        assert!(!err.contains("S3CRET"), "{text}: {err}");
        assert!(err.contains("sig_key"), "{text}: {err}");
    }
}
