//! HTTP/1 request head parser: never panics; a complete parse never claims more bytes than given.
#![no_main]
use holdfast::proto::http1::{HeadLimits, Parsed, parse_request, parse_response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = HeadLimits { bytes_max: 8192, headers_max: 64 };
    if let Ok(Parsed::Complete(_, used)) = parse_request(data, limits) {
        assert!(used <= data.len());
    }
    if let Ok(Parsed::Complete(_, used)) = parse_response(data, limits, "GET") {
        assert!(used <= data.len());
    }
});
