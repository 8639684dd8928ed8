//! Seeded randomized damage: many small logs (random record counts,
//! segment sizes, committed positions), each damaged once at random (a bit
//! of a frame header, a bit of a payload, a burst of bytes, a bit of the
//! preallocated zero fill), then opened in both corruption modes.
//!
//! Checked every trial: under `OnCorruption::Fail` either every
//! uncommitted record is delivered (the damage hit only records not
//! needed, or unpublished space) or a typed error names the damaged
//! segment and the offset of a damaged frame, after a prefix of the intact
//! records; under `OnCorruption::Quarantine` every intact uncommitted
//! record is delivered in order, every lsn from the committed position to
//! the next one is either delivered or in a reported range (exactly, when
//! the report says its counts are exact), and no lsn is given twice after
//! reopening and appending.

use std::collections::BTreeSet;

use unistream::wal::{Fsync, Lsn, OnCorruption};

use super::damage_harness::{
    assert_corrupt_at, check_no_lsn_reused, intact, open_and_drain, options, payloads, write_log,
    xor_bytes, FRAME, HEADER,
};
use crate::support::seed::rng;
use crate::support::wal::{lsns, segment_path};

/// Trials per run: bounded so that the test binary stays fast.
const TRIALS: usize = 40;

/// What was damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DamageKind {
    HeaderBit,
    PayloadBit,
    Burst,
    ZeroFill,
}

#[tokio::test]
async fn random_damage_is_salvaged_reported_exactly_and_never_reuses_an_lsn() {
    let mut rng = rng(
        module_path!(),
        "random_damage_is_salvaged_reported_exactly_and_never_reuses_an_lsn",
    );
    for trial in 0..TRIALS {
        let segment_bytes = [116u64, 191, 64 << 10][rng.usize(0..3)];
        let preallocated = segment_bytes == 64 << 10 && rng.bool();
        let fsync = if preallocated {
            Fsync::Always
        } else {
            Fsync::Never
        };
        let n = rng.u64(4..=24);
        let committed = if rng.bool() { 0 } else { rng.u64(0..n / 2) };
        let per_segment = (segment_bytes - HEADER) / FRAME;
        // The segment (first lsn) and byte offset of record `i`'s frame.
        let place =
            |i: u64| -> (u64, u64) { (i - i % per_segment, HEADER + FRAME * (i % per_segment)) };
        let kinds = if preallocated {
            &[
                DamageKind::HeaderBit,
                DamageKind::PayloadBit,
                DamageKind::Burst,
                DamageKind::ZeroFill,
            ][..]
        } else {
            &[
                DamageKind::HeaderBit,
                DamageKind::PayloadBit,
                DamageKind::Burst,
            ][..]
        };
        let kind = kinds[rng.usize(0..kinds.len())];
        // A record of a segment still on disk (wholly committed ones are
        // deleted).
        let victim = rng.u64(committed - committed % per_segment..n);
        let burst_len = rng.u64(2..=60);
        let bit = rng.u32(0..8);
        let within = rng.u64(0..FRAME);
        let fill_pick = rng.u64(..);
        let masks: Vec<u8> = (0..burst_len).map(|_| rng.u8(1..=255)).collect();
        let case = format!(
            "trial {trial}: {n} records, {segment_bytes}-byte segments, {fsync:?}, \
             committed {committed}, {kind:?} at record {victim}"
        );

        for mode in [OnCorruption::Fail, OnCorruption::Quarantine] {
            let dir = tempfile::tempdir().unwrap();
            write_log(dir.path(), segment_bytes, fsync, n, committed).await;
            let (segment_first, frame_at) = place(victim);
            let file = segment_path(dir.path(), segment_first);
            let bytes = std::fs::read(&file).unwrap();
            let len = bytes.len() as u64;
            let frames_in_segment = (n - segment_first).min(per_segment);
            let frames_end = HEADER + FRAME * frames_in_segment;
            // The damaged byte range, as [start, end) of `file`.
            let (start, mask): (u64, Vec<u8>) = match kind {
                DamageKind::HeaderBit => (frame_at + within % 12, vec![1 << bit]),
                DamageKind::PayloadBit => (frame_at + 12 + within % 13, vec![1 << bit]),
                DamageKind::Burst => {
                    let start = frame_at + within;
                    let end = (start + burst_len).min(frames_end);
                    // No byte turned to zero: zeros are what a torn write
                    // leaves, a different (tested) case.
                    let mask = (start..end)
                        .zip(&masks)
                        .map(|(at, &m)| {
                            let b = bytes[at as usize];
                            if b ^ m == 0 {
                                m ^ 0x01
                            } else {
                                m
                            }
                        })
                        .collect();
                    (start, mask)
                }
                DamageKind::ZeroFill => {
                    assert!(len > frames_end, "{case}: preallocated");
                    (frames_end + fill_pick % (len - frames_end), vec![1 << bit])
                }
            };
            let end = start + mask.len() as u64;
            xor_bytes(&file, start, &mask);
            // Records whose frames the damage touches.
            let hit: Vec<u64> = (segment_first..segment_first + frames_in_segment)
                .filter(|&i| {
                    let at = place(i).1;
                    at < end && start < at + FRAME
                })
                .collect();
            let hit_offsets: Vec<u64> = hit.iter().map(|&i| place(i).1).collect();
            let needed_hit = hit.iter().any(|&i| i >= committed);
            let expected = intact(committed..n, &hit);
            let opts = options(dir.path(), segment_bytes, fsync, mode);
            let case = format!("{case}, {mode:?}, bytes {start}..{end} hit {hit:?}");

            match (mode, open_and_drain(opts.clone()).await) {
                (OnCorruption::Fail, Err((before, err))) => {
                    // A burst over a header of the last segment can hide how
                    // many records the bytes held: then they may hold needed
                    // ones, and Fail mode fails rather than guess.
                    let last_segment = segment_first + per_segment >= n;
                    assert!(
                        needed_hit || (kind == DamageKind::Burst && last_segment),
                        "{case}: failed on damage not needed: {err}"
                    );
                    assert_corrupt_at(&err, &file, &hit_offsets);
                    let prefix = &expected[..before.len().min(expected.len())];
                    assert_eq!(payloads(&before), prefix, "{case}");
                }
                (OnCorruption::Fail, Ok(opened)) => {
                    assert!(!needed_hit, "{case}: needed records damaged, yet no error");
                    check_delivered(&opened, &expected, &hit, committed, &case);
                    if opened.quarantined.iter().all(|q| q.records_exact) {
                        assert_eq!(
                            lsns(&opened.delivered),
                            (committed..n).collect::<Vec<_>>(),
                            "{case}"
                        );
                    }
                    check_no_lsn_reused(opts, &opened).await;
                }
                (_, Err((_, err))) => panic!("{case}: quarantine failed: {err}"),
                (_, Ok(opened)) => {
                    check_delivered(&opened, &expected, &hit, committed, &case);
                    let delivered = lsns(&opened.delivered);
                    assert!(delivered.windows(2).all(|w| w[0] < w[1]), "{case}");
                    let next = opened.recovery.next_lsn.0;
                    assert!(next >= n, "{case}: next lsn {next}");
                    let exact = opened.quarantined.iter().all(|q| q.records_exact);
                    let mut lost = BTreeSet::new();
                    for q in &opened.quarantined {
                        assert_eq!(q.file, file, "{case}: {q:?}");
                        for lsn in q.lsns.0 .0..q.lsns.1 .0 {
                            assert!(lost.insert(lsn), "{case}: lsn {lsn} reported twice");
                        }
                    }
                    assert!(
                        delivered.iter().all(|l| !lost.contains(l)),
                        "{case}: a delivered lsn is also reported lost"
                    );
                    // Every lsn from the committed position on is accounted
                    // for: delivered, or in a reported range.
                    let accounted: BTreeSet<u64> = delivered
                        .iter()
                        .copied()
                        .chain(lost.iter().copied().filter(|&l| l >= committed))
                        .collect();
                    assert_eq!(
                        accounted,
                        (committed..next).collect::<BTreeSet<_>>(),
                        "{case}: {:?}",
                        opened.quarantined
                    );
                    if exact {
                        // Exact counts: the lsns are the records' own.
                        assert_eq!(next, n, "{case}");
                        let needed_lost: Vec<u64> =
                            hit.iter().copied().filter(|&i| i >= committed).collect();
                        let reported: Vec<u64> =
                            lost.iter().copied().filter(|&l| l >= committed).collect();
                        assert_eq!(reported, needed_lost, "{case}");
                        assert_eq!(
                            delivered,
                            (committed..n)
                                .filter(|i| !hit.contains(i))
                                .collect::<Vec<_>>(),
                            "{case}"
                        );
                    }
                    if kind == DamageKind::ZeroFill {
                        assert!(opened.quarantined.is_empty(), "{case}");
                        assert_eq!(opened.recovery.truncated_tail_bytes, len - frames_end);
                    }
                    assert!(opened.appended[0] >= Lsn(next), "{case}");
                    check_no_lsn_reused(opts, &opened).await;
                }
            }
        }
    }
}

/// Every intact uncommitted record is delivered, in order. When a report
/// is not exact (the damaged bytes hid how many records they held), the
/// records salvaged after them may come with lsns above their own, so
/// that intact records below the committed position may be delivered
/// again first (at least once, never lost).
fn check_delivered(
    opened: &super::damage_harness::Opened,
    expected: &[Vec<u8>],
    hit: &[u64],
    committed: u64,
    case: &str,
) {
    let got = payloads(&opened.delivered);
    if opened.quarantined.iter().all(|q| q.records_exact) {
        assert_eq!(got, expected, "{case}");
        return;
    }
    assert!(
        got.ends_with(expected),
        "{case}: {:?}",
        lsns(&opened.delivered)
    );
    let again = &got[..got.len() - expected.len()];
    let committed_intact = intact(0..committed, hit);
    assert!(
        committed_intact.ends_with(again),
        "{case}: delivered again: {again:?}"
    );
}
