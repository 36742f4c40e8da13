//! Unit tests of `sequencer` (a sibling file: the module and its tests pass 800 lines).

use super::*;

type Seq = Sequencer<&'static str>;

fn meta<'a>(channel: &'a str, id: Option<&'a str>, prev_id: Option<&'a str>) -> Meta<'a> {
    let no_seq = false;
    Meta {
        channel,
        id,
        prev_id,
        no_seq,
    }
}

/// Pushes item `id` (its own payload) on `ch` with `prev`.
fn push(s: &mut Seq, ch: &str, id: &'static str, prev: Option<&str>, now: u64) -> Vec<String> {
    show(s.push(meta(ch, Some(id), prev), id, now))
}

/// "x" for an in-order release, "!x" for one after a gap.
fn show(out: Vec<Released<&'static str>>) -> Vec<String> {
    out.into_iter()
        .map(|r| match r {
            Released::Item(t) => t.to_owned(),
            Released::AfterGap(t) => format!("!{t}"),
        })
        .collect()
}

fn cfg() -> SequencerConfig {
    SequencerConfig::default()
}

fn seq_with(change: fn(&mut SequencerConfig)) -> Seq {
    let mut cfg = cfg();
    change(&mut cfg);
    Seq::new(cfg)
}

#[test]
fn in_order_items_pass_through() {
    let mut s = Seq::new(cfg());
    assert_eq!(push(&mut s, "ch", "a", None, 0), ["a"]);
    assert_eq!(push(&mut s, "ch", "b", Some("a"), 1), ["b"]);
    assert_eq!(push(&mut s, "ch", "c", Some("b"), 2), ["c"]);
    assert_eq!(s.last_id("ch"), Some("c"));
    assert_eq!(s.next_deadline(), None);
    assert_eq!(s.stats().channels_tracked, 1);
}

#[test]
fn first_item_on_a_channel_passes_whatever_its_prev_id() {
    let mut s = Seq::new(cfg());
    assert_eq!(push(&mut s, "ch", "b", Some("a"), 0), ["b"]);
    assert_eq!(s.last_id("ch"), Some("b"));
}

#[test]
fn out_of_order_items_wait_and_the_gap_releases_them_in_order() {
    let mut s = Seq::new(cfg());
    push(&mut s, "ch", "a", None, 0);
    assert!(push(&mut s, "ch", "d", Some("c"), 10).is_empty());
    assert!(push(&mut s, "ch", "c", Some("b"), 20).is_empty());
    assert_eq!(s.next_deadline(), Some(5_010));
    assert_eq!(s.stats().pending_items, 2);
    assert_eq!(s.stats().pending_channels, 1);
    assert_eq!(s.last_id("ch"), Some("a"));
    assert_eq!(push(&mut s, "ch", "b", Some("a"), 30), ["b", "c", "d"]);
    assert_eq!(s.last_id("ch"), Some("d"));
    assert_eq!(s.next_deadline(), None);
    assert_eq!(s.stats().pending_items, 0);
    assert_eq!(s.stats().pending_channels, 0);
    assert!(s.expire(100_000).is_empty());
}

#[test]
fn a_partial_fill_releases_only_the_connected_part() {
    let mut s = Seq::new(cfg());
    push(&mut s, "ch", "a", None, 0);
    push(&mut s, "ch", "c", Some("b"), 1);
    push(&mut s, "ch", "f", Some("e"), 2);
    assert_eq!(push(&mut s, "ch", "b", Some("a"), 3), ["b", "c"]);
    assert_eq!(s.stats().pending_items, 1);
    assert_eq!(push(&mut s, "ch", "e", Some("c"), 4), ["e", "f"]);
    assert_eq!(s.stats().pending_items, 0);
}

#[test]
fn expired_waits_are_released_after_a_gap_with_their_chain() {
    let mut s = Seq::new(cfg());
    push(&mut s, "ch", "a", None, 0);
    push(&mut s, "ch", "c", Some("b"), 100);
    push(&mut s, "ch", "d", Some("c"), 200);
    push(&mut s, "ch", "y", Some("x"), 300);
    assert!(s.expire(5_099).is_empty());
    // c's wait ends first; d follows it in order; y's wait has not ended yet.
    assert_eq!(show(s.expire(5_100)), ["!c", "d"]);
    assert_eq!(s.last_id("ch"), Some("d"));
    assert_eq!(s.next_deadline(), Some(5_300));
    assert_eq!(show(s.expire(9_000)), ["!y"]);
    assert_eq!(s.last_id("ch"), Some("y"));
    let st = s.stats();
    assert_eq!((st.gaps_released, st.pending_items), (2, 0));
}

#[test]
fn waits_expire_oldest_first_across_channels() {
    let mut s = Seq::new(cfg());
    push(&mut s, "one", "a", None, 0);
    push(&mut s, "two", "a", None, 0);
    push(&mut s, "two", "c", Some("b"), 10);
    push(&mut s, "one", "c", Some("b"), 20);
    let mut out = Vec::new();
    s.expire_into(10_000, &mut out);
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(Released::is_after_gap));
    assert_eq!(s.last_id("one"), Some("c"));
    assert_eq!(s.last_id("two"), Some("c"));
}

#[test]
fn duplicate_ids_are_dropped_within_the_ttl_and_accepted_after() {
    let mut s = Seq::new(cfg());
    assert_eq!(push(&mut s, "ch", "a", None, 0), ["a"]);
    assert!(push(&mut s, "ch", "a", None, 59_999).is_empty());
    assert_eq!(s.stats().duplicates_dropped, 1);
    // The same id on another channel is not a duplicate.
    assert_eq!(push(&mut s, "other", "a", None, 59_999), ["a"]);
    assert_eq!(push(&mut s, "ch", "a", None, 60_000), ["a"]);
    assert_eq!(s.stats().ids_cached, 2);
}

#[test]
fn a_zero_ttl_disables_the_id_cache() {
    let mut s = seq_with(|c| c.id_cache_ttl_ms = 0);
    push(&mut s, "ch", "a", None, 0);
    assert_eq!(push(&mut s, "ch", "a", None, 1), ["a"]);
    assert_eq!(s.stats().ids_cached, 0);
}

#[test]
fn expire_forgets_old_ids_without_a_push() {
    let mut s = Seq::new(cfg());
    push(&mut s, "ch", "a", None, 0);
    assert!(s.expire(60_000).is_empty());
    assert_eq!(s.stats().ids_cached, 0);
}

#[test]
fn no_seq_items_bypass_ordering_but_not_the_id_cache() {
    let mut s = Seq::new(cfg());
    push(&mut s, "ch", "a", None, 0);
    let m = Meta {
        no_seq: true,
        ..meta("ch", Some("z"), Some("y"))
    };
    assert_eq!(show(s.push(m, "z", 1)), ["z"]);
    assert_eq!(s.last_id("ch"), Some("a"));
    assert!(s.push(m, "z", 2).is_empty());
    assert_eq!(s.stats().duplicates_dropped, 1);
    let no_id = Meta { id: None, ..m };
    assert_eq!(show(s.push(no_id, "n", 3)), ["n"]);
    assert_eq!(show(s.push(no_id, "n", 4)), ["n"]);
}

#[test]
fn an_item_without_prev_id_passes_and_sets_the_last_id() {
    let mut s = Seq::new(cfg());
    push(&mut s, "ch", "a", None, 0);
    push(&mut s, "ch", "c", Some("b"), 1);
    assert_eq!(push(&mut s, "ch", "b", None, 2), ["b", "c"]);
    assert_eq!(s.last_id("ch"), Some("c"));
}

#[test]
fn an_item_without_id_clears_the_last_id() {
    let mut s = Seq::new(cfg());
    push(&mut s, "ch", "a", None, 0);
    assert_eq!(
        show(s.push(meta("ch", None, Some("a")), "anon", 1)),
        ["anon"]
    );
    assert_eq!(s.last_id("ch"), None);
    assert_eq!(push(&mut s, "ch", "q", Some("p"), 2), ["q"]);
}

#[test]
fn a_released_item_without_id_ends_the_chain() {
    let mut s = Seq::new(cfg());
    push(&mut s, "ch", "a", None, 0);
    assert!(s.push(meta("ch", None, Some("b")), "anon", 1).is_empty());
    assert_eq!(push(&mut s, "ch", "b", Some("a"), 2), ["b", "anon"]);
    assert_eq!(s.last_id("ch"), None);
}

#[test]
fn channels_are_independent() {
    let mut s = Seq::new(cfg());
    push(&mut s, "one", "a", None, 0);
    push(&mut s, "two", "a", None, 0);
    assert!(push(&mut s, "one", "c", Some("b"), 1).is_empty());
    assert_eq!(push(&mut s, "two", "b", Some("a"), 2), ["b"]);
    assert_eq!(push(&mut s, "two", "c", Some("b"), 3), ["c"]);
    assert_eq!(s.last_id("one"), Some("a"));
    assert_eq!(push(&mut s, "one", "b", Some("a"), 4), ["b", "c"]);
}

#[test]
fn a_second_item_on_the_same_prev_id_is_dropped_and_may_be_retried() {
    let mut s = Seq::new(cfg());
    push(&mut s, "ch", "a", None, 0);
    assert!(push(&mut s, "ch", "c", Some("b"), 1).is_empty());
    assert!(push(&mut s, "ch", "d", Some("b"), 2).is_empty());
    assert_eq!(s.stats().same_prev_id_dropped, 1);
    assert_eq!(s.stats().pending_items, 1);
    assert_eq!(push(&mut s, "ch", "b", Some("a"), 3), ["b", "c"]);
    // d was dropped, not remembered: its retry is not a duplicate.
    assert!(push(&mut s, "ch", "d", Some("b"), 4).is_empty());
    assert_eq!(s.stats().duplicates_dropped, 0);
    assert_eq!(s.stats().pending_items, 1);
}

#[test]
fn the_pending_limit_drops_extra_items() {
    let mut s = seq_with(|c| c.pending_per_channel_max = 2);
    push(&mut s, "ch", "a", None, 0);
    push(&mut s, "ch", "c", Some("b"), 1);
    push(&mut s, "ch", "e", Some("d"), 2);
    assert!(push(&mut s, "ch", "g", Some("f"), 3).is_empty());
    let st = s.stats();
    assert_eq!((st.pending_items, st.pending_full_dropped), (2, 1));
    assert!(push(&mut s, "other", "x", Some("w"), 4).len() == 1);
}

#[test]
fn the_last_id_table_evicts_the_least_recently_set_channel() {
    let mut s = seq_with(|c| c.channels_max = 2);
    push(&mut s, "one", "a", None, 0);
    push(&mut s, "two", "a", None, 1);
    push(&mut s, "one", "b", Some("a"), 2);
    push(&mut s, "three", "a", None, 3);
    assert_eq!(s.last_id("two"), None);
    assert_eq!(s.last_id("one"), Some("b"));
    assert_eq!(s.last_id("three"), Some("a"));
    let st = s.stats();
    assert_eq!((st.channels_tracked, st.last_ids_evicted), (2, 1));
    // With its last id gone, "two" takes the next item at once.
    assert_eq!(push(&mut s, "two", "z", Some("y"), 4), ["z"]);
}

#[test]
fn over_the_channel_limit_an_out_of_order_item_is_released_at_once() {
    let mut s = seq_with(|c| c.channels_max = 1);
    push(&mut s, "one", "a", None, 0);
    assert!(push(&mut s, "one", "c", Some("b"), 1).is_empty());
    push(&mut s, "two", "a", None, 2);
    assert_eq!(push(&mut s, "two", "c", Some("b"), 3), ["!c"]);
    let st = s.stats();
    assert_eq!((st.channels_full_released, st.gaps_released), (1, 1));
    assert_eq!(st.pending_channels, 1);
    assert_eq!(show(s.expire(5_001)), ["!c"]);
}

#[test]
fn the_id_cache_limit_forgets_the_oldest_id() {
    let mut s = seq_with(|c| c.id_cache_max = 2);
    push(&mut s, "ch", "a", None, 0);
    push(&mut s, "ch", "b", None, 1);
    push(&mut s, "ch", "c", None, 2);
    let st = s.stats();
    assert_eq!((st.ids_cached, st.ids_evicted), (2, 1));
    assert!(push(&mut s, "ch", "b", None, 3).is_empty());
    assert_eq!(push(&mut s, "ch", "a", None, 4), ["a"]);
}

#[test]
fn a_zero_wait_releases_out_of_order_items_at_once() {
    let mut s = seq_with(|c| c.wait_ms = 0);
    push(&mut s, "ch", "a", None, 0);
    assert_eq!(push(&mut s, "ch", "c", Some("b"), 1), ["!c"]);
    assert_eq!(s.next_deadline(), None);
}

#[test]
fn forget_channel_drops_waiting_items_and_the_last_id() {
    let mut s = Seq::new(cfg());
    push(&mut s, "ch", "a", None, 0);
    push(&mut s, "ch", "c", Some("b"), 1);
    push(&mut s, "ch", "e", Some("d"), 2);
    assert_eq!(s.forget_channel("ch"), 2);
    assert_eq!(s.forget_channel("ch"), 0);
    assert_eq!(s.last_id("ch"), None);
    assert_eq!(s.next_deadline(), None);
    assert!(s.expire(u64::MAX).is_empty());
    assert_eq!(s.stats().forgotten_dropped, 2);
}

#[test]
fn clearing_last_ids_lets_the_next_item_through_and_keeps_waiting_ones() {
    let mut s = Seq::new(cfg());
    push(&mut s, "ch", "a", None, 0);
    push(&mut s, "ch", "d", Some("c"), 1);
    s.clear_last_ids();
    assert_eq!(s.last_id("ch"), None);
    assert_eq!(s.stats().pending_items, 1);
    assert_eq!(push(&mut s, "ch", "c", Some("zzz"), 2), ["c", "d"]);
}

#[test]
fn remove_last_id_forgets_one_channel() {
    let mut s = Seq::new(cfg());
    push(&mut s, "one", "a", None, 0);
    push(&mut s, "two", "a", None, 0);
    s.remove_last_id("one");
    assert_eq!(s.last_id("one"), None);
    assert_eq!(s.last_id("two"), Some("a"));
}

#[test]
fn a_clock_stepping_back_is_harmless() {
    let mut s = Seq::new(cfg());
    push(&mut s, "ch", "a", None, 10_000);
    push(&mut s, "ch", "b", None, 0);
    push(&mut s, "ch", "d", Some("c"), 0);
    assert!(s.expire(4_999).is_empty());
    assert_eq!(show(s.expire(5_000)), ["!d"]);
    // Both ids expire together, no earlier than the later-stamped one.
    assert!(push(&mut s, "ch", "b", None, 60_000).is_empty());
    assert_eq!(push(&mut s, "ch", "b", None, 70_000), ["b"]);
}

#[test]
fn released_helpers() {
    assert_eq!(Released::Item(1).into_inner(), 1);
    assert_eq!(Released::AfterGap(2).into_inner(), 2);
    assert!(!Released::Item(1).is_after_gap());
}
