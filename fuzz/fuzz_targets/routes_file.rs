//! Routes-file parser and matcher: never panic on any text.
#![no_main]
use holdfast::routes::RouteTable;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(table) = RouteTable::parse(text) {
        if let Some(route) = table.find("example.com:80", "/a/b?c", false, false) {
            let _ = route.origin_path("/a/b?c");
        }
    }
});
