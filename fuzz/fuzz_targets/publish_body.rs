//! Publish body parser: never panics; accepted items always have a non-empty channel.
#![no_main]
use holdfast::hub::delivery::Delivery;
use holdfast::proto::publish::{PublishLimits, parse_body};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(items) = parse_body(data, &PublishLimits::default()) {
        for (seq, item) in items.into_iter().enumerate() {
            assert!(!item.channel.is_empty());
            let _ = Delivery::encode(item, seq as u64);
        }
    }
});
