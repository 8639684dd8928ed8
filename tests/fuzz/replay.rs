//! Every input committed under `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/`, through the target's body.

use std::path::{Path, PathBuf};

use unistream::__fuzz::TARGETS;

use super::run;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files in `dir`, sorted; none when it does not exist.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|entry| entry.expect("listing fuzz inputs").path())
            .filter(|path| path.is_file())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("listing {}: {e}", dir.display()),
    };
    files.sort();
    files
}

/// Runs every input of `kind` (`corpus` or `regressions`) through its
/// target; returns how many ran per target.
fn replay(kind: &str) -> Vec<(&'static str, usize)> {
    TARGETS
        .iter()
        .map(|&target| {
            let files = inputs(&fuzz_dir().join(kind).join(target));
            let mut ran = 0;
            for file in &files {
                let data = std::fs::read(file).expect("reading a fuzz input");
                // A panic names the input through this line of output.
                println!("{target}: {}", file.display());
                if run(target, &data) {
                    ran += 1;
                }
            }
            (target, ran)
        })
        .collect()
}

fn built(target: &str) -> bool {
    run(target, &[])
}

#[test]
fn every_target_replays_its_committed_corpus() {
    for (target, ran) in replay("corpus") {
        println!("{target}: {ran} corpus inputs");
        if built(target) {
            assert!(ran > 0, "fuzz/corpus/{target}/ holds no input");
        }
    }
}

#[test]
fn every_crash_input_found_so_far_replays_without_a_panic() {
    let mut total = 0;
    for (target, ran) in replay("regressions") {
        println!("{target}: {ran} regression inputs");
        total += ran;
    }
    assert!(
        total > 0,
        "fuzz/regressions/ holds the crash inputs found so far"
    );
}
