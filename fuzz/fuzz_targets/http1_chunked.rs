//! Chunked decoder: any split of the input decodes to the same bytes as feeding it whole.
#![no_main]
use holdfast::proto::http1::ChunkedDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else { return };
    let mut whole = ChunkedDecoder::new();
    let mut out_whole = Vec::new();
    let r_whole = whole.decode(body, &mut out_whole);
    let cut = (split as usize).min(body.len());
    let mut parts = ChunkedDecoder::new();
    let mut out_parts = Vec::new();
    let first = parts.decode(&body[..cut], &mut out_parts);
    if let (Ok(w), Ok(p1)) = (&r_whole, &first) {
        if !p1.done && p1.consumed == cut {
            if let Ok(p2) = parts.decode(&body[cut..], &mut out_parts) {
                assert_eq!(w.done, p2.done);
                assert_eq!(out_whole, out_parts);
            }
        }
    }
});
