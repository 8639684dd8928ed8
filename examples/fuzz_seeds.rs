//! Writes the seed corpus of the fuzz targets in `fuzz/`, made by the crate
//! itself (real WAL directories, position files, KPL aggregates, checkpoint
//! documents, JSON lines), into `fuzz/corpus/<target>/`, or into the
//! directory given as the first argument.
//!
//! ```text
//! cargo run --example fuzz_seeds --features fuzzing,kpl
//! ```

fn main() -> std::io::Result<()> {
    let corpus = std::env::args_os()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus"));
    let written = unistream::__fuzz::seeds::write_all(&corpus)?;
    println!("wrote {written} seed inputs under {}", corpus.display());
    Ok(())
}
