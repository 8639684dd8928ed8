//! Quickstart: a durable producer (and, once wired in, a checkpointed
//! consumer) on local files only — no AWS account, nothing to install.
//!
//! ```sh
//! cargo run --example quickstart
//! ```
//!
//! Everything is written to a fresh directory under `target/quickstart/`.

mod produce;

use std::path::PathBuf;

#[tokio::main]
async fn main() -> Result<(), unistream::Error> {
    let dir = fresh_dir()?;
    println!("quickstart: working in {}", dir.display());

    // Producer half: 100,000 records through `buffered_wal` into a file,
    // then a simulated crash that loses nothing.
    let file = produce::run(&dir).await?;

    // ---- Consumer half -------------------------------------------------
    // The consumer half (examples/quickstart/consume.rs) reads `file` back
    // with checkpoints. Wire it in here:
    //     mod consume;   (at the top)
    //     consume::run(&file, &dir).await?;
    // ---------------------------------------------------------------------
    let _ = &file;

    Ok(())
}

/// `target/quickstart/run-<pid>`: new for every run, kept for inspection.
fn fresh_dir() -> Result<PathBuf, unistream::Error> {
    let root = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    let dir = root
        .join("quickstart")
        .join(format!("run-{}", std::process::id()));
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(unistream::Error::io("remove", &dir, e))
        }
        _ => {}
    }
    std::fs::create_dir_all(&dir).map_err(|e| unistream::Error::io("create", &dir, e))?;
    Ok(dir)
}
