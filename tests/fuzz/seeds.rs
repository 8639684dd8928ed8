//! The seeds `unistream::__fuzz::seeds` makes (the source of
//! `fuzz/corpus/`) are inputs of their targets that the bodies accept.

use unistream::__fuzz::{seeds, TARGETS};

use super::run;

#[test]
fn every_target_gets_seeds_and_its_body_accepts_them() {
    let seeds = seeds::all().expect("making the seeds");
    for &target in TARGETS {
        let of_target: Vec<_> = seeds.iter().filter(|s| s.target == target).collect();
        if !run(target, &[]) {
            println!("{target}: not in this build");
            continue;
        }
        assert!(!of_target.is_empty(), "no seed for {target}");
        for seed in of_target {
            println!("{target}: seed {}", seed.name);
            assert!(run(target, &seed.bytes));
        }
    }
}

#[test]
fn wal_seeds_hold_real_segment_files() {
    // A seed that recovery rejected outright would fuzz only the rejection.
    let seeds = seeds::all().expect("making the seeds");
    let wal: Vec<_> = seeds
        .iter()
        .filter(|s| s.target == "wal_recovery")
        .collect();
    assert!(wal.len() >= 4);
    for seed in wal {
        assert!(
            seed.bytes.windows(8).any(|w| w == b"UNIWAL\x00\x01"),
            "seed {} holds a segment header",
            seed.name
        );
    }
}
