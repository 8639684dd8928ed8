//! Seeds of the random tests: every random test prints the seed it runs
//! with, and takes it from `UNISTREAM_SEED` when that is set, so that a
//! failure can be run again with the same random choices.
//!
//! A seed fixes the test's own choices (kill moments, counts, property-test
//! cases, and the choices of the child processes it starts, which get their
//! seeds from it). It does not fix the scheduling of threads and processes:
//! run again, a kill test follows the same plan, not the same interleaving.
//!
//! The message goes to the test's captured output, which the harness shows
//! when the test fails (and always with `--nocapture`).

use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence, RngSeed};

/// The variable a seed is taken from.
pub const SEED_VAR: &str = "UNISTREAM_SEED";

/// The seed of the test `name` of the module `module` (`module_path!()`):
/// `UNISTREAM_SEED` when set, else a fresh one. Prints it, with the command
/// that runs the test again with it.
pub fn seed(module: &str, name: &str) -> u64 {
    let seed = match std::env::var(SEED_VAR) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{SEED_VAR}={text:?} is not a u64")),
        Err(_) => fastrand::u64(..),
    };
    announce(module, name, SEED_VAR, seed);
    seed
}

/// A random number generator seeded by [`seed`].
pub fn rng(module: &str, name: &str) -> fastrand::Rng {
    fastrand::Rng::with_seed(seed(module, name))
}

/// `config` for the property test `name` of the module `module`, with a
/// printed seed: `PROPTEST_RNG_SEED` when set (proptest's own variable),
/// else [`seed`]. Failures persist next to the test's source file
/// (`model.rs` → `model.proptest-regressions`), whatever folder it is in:
/// proptest's default would put them under a `proptest-regressions/`
/// folder once a `main.rs` is beside the source file.
pub fn proptest_config(module: &str, name: &str, config: ProptestConfig) -> ProptestConfig {
    let rng_seed = match config.rng_seed {
        RngSeed::Fixed(seed) => {
            announce(module, name, "PROPTEST_RNG_SEED", seed);
            seed
        }
        RngSeed::Random => seed(module, name),
    };
    let failure_persistence = config
        .failure_persistence
        .as_ref()
        .map(|_| Box::new(FileFailurePersistence::WithSource("proptest-regressions")) as Box<_>);
    ProptestConfig {
        rng_seed: RngSeed::Fixed(rng_seed),
        failure_persistence,
        ..config
    }
}

fn announce(module: &str, name: &str, var: &str, seed: u64) {
    // `module` is `<test binary>::<module>…`; the harness names the test by
    // the path after the binary.
    let (binary, path) = module.split_once("::").unwrap_or((module, ""));
    let test = if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}::{name}")
    };
    eprintln!(
        "{binary}::{test}: seed {seed}; run it again with \
         `{var}={seed} cargo test --all-features --test {binary} -- --exact {test}`"
    );
}
