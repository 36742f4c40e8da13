//! Configuration file: `Config::from_toml` on arbitrary UTF-8.
//!
//! Properties: no panic (parsing, `validate`, `worker_count`, key decoding, the inline routes);
//! whether a text parses does not depend on the path it came from; a relative `routes_file` is
//! anchored at the config file's directory and an absolute one kept; a config that validates has
//! the limits `validate` promises; unknown keys are always an error (a known config with one
//! unknown key added never parses).
#![no_main]
use std::path::Path;

use holdfast::config::{Config, decode_key};
use holdfast::routes::RouteTable;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let plain = Config::from_toml(text, None);
    let path = Path::new("/etc/holdfast/holdfast.toml");
    let anchored = Config::from_toml(text, Some(path));
    assert_eq!(plain.is_ok(), anchored.is_ok());
    if let Err(e) = &plain {
        let _ = e.to_string();
    }
    let (Ok(plain), Ok(anchored)) = (plain, anchored) else {
        return;
    };
    match &plain.server.routes_file {
        None => assert!(anchored.server.routes_file.is_none()),
        Some(f) if f.is_relative() => {
            assert_eq!(
                anchored.server.routes_file,
                Some(Path::new("/etc/holdfast").join(f))
            );
        }
        Some(f) => assert_eq!(anchored.server.routes_file.as_ref(), Some(f)),
    }
    if plain.validate().is_ok() {
        assert!(!plain.server.listen.is_empty());
        assert!(plain.http.header_bytes_max >= 64);
        assert!(plain.http.read_buffer_bytes >= 1024);
        assert!(plain.publish.inbox_capacity >= 1);
        assert!(plain.grip.channels_max >= 1);
        assert!(plain.hold.outbox_bytes_max >= 1024);
        let hold = &plain.hold;
        assert!(hold.outbox_hard_bytes_max >= hold.outbox_bytes_max);
        assert!(hold.outbox_bytes_max_per_worker >= hold.outbox_hard_bytes_max);
        assert!(
            plain
                .publish
                .basic_auth
                .as_deref()
                .is_none_or(|a| a.contains(':'))
        );
    }
    if plain.server.workers != 0 {
        assert_eq!(plain.worker_count(), plain.server.workers);
    }
    for key in [&plain.grip.sig_key, &plain.publish.jwt_key]
        .into_iter()
        .flatten()
    {
        if let Ok(bytes) = decode_key(key)
            && !key.starts_with("base64:")
        {
            assert_eq!(bytes, key.as_bytes());
        }
    }
    if plain.server.routes_file.is_none() {
        let _ = RouteTable::parse(&plain.server.routes);
    }
    let _ = format!("{plain:?}");
    // deny_unknown_fields: the same text with an unknown key in [http] never parses (a second
    // [http] table is an error of its own).
    let with_unknown = format!("{text}\n[http]\nheader_bytes_mx = 5\n");
    assert!(
        Config::from_toml(&with_unknown, None).is_err(),
        "unknown key accepted"
    );
});
