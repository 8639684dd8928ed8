//! Quickstart: a durable producer and a checkpointed consumer on local
//! files only — no AWS account, nothing to install.
//!
//! ```sh
//! cargo run --example quickstart
//! ```
//!
//! Everything is written to a fresh directory under `target/quickstart/`.

mod consume;
mod produce;

use std::path::PathBuf;

#[tokio::main]
async fn main() -> Result<(), unistream::Error> {
    let dir = fresh_dir()?;
    println!("quickstart: working in {}", dir.display());

    // Producer half: 100,000 records through `buffered_wal` into a file,
    // then a simulated crash that loses nothing.
    let file = produce::run(&dir).await?;

    // Consumer half: read the file back with checkpoints, crash part-way,
    // resume after the checkpoint. Ctrl-C stops it cleanly: intake ends,
    // the records taken are processed, the checkpoint is saved.
    let shutdown = unistream::source::Shutdown::new().trigger_on_ctrl_c();
    consume::run_until(&file, &dir, &shutdown).await?;

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
