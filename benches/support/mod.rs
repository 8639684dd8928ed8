//! What every bench needs alike: the runtime shape of this 2-core
//! machine, a scratch directory on the disk `scripts/machine-limits.sh`
//! measures, CPU clocks that other load does not inflate, and a median.

use std::path::PathBuf;
use std::time::Duration;

/// A multi-thread tokio runtime with `workers` workers (2 on this machine
/// kind, 1 where the bench's work is a single task).
pub fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// `$CARGO_TARGET_DIR`, else `target`: the file system whose raw limits
/// `scripts/machine-limits.sh` reports.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// A fresh temporary directory under [`target_dir`].
pub fn bench_dir() -> tempfile::TempDir {
    let root = target_dir();
    std::fs::create_dir_all(&root).expect("bench root");
    tempfile::tempdir_in(root).expect("bench dir")
}

fn cpu_clock(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration;
    // the clock ids passed are constants Linux supports.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime({clock}) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU time consumed by every thread of the process so far.
pub fn process_cpu_time() -> Duration {
    cpu_clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// CPU time consumed by the calling thread so far.
pub fn thread_cpu_time() -> Duration {
    cpu_clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}
