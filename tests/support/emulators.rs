//! Local AWS emulators for integration tests.
//!
//! Each test binary starts at most one of each emulator, on first use, on a
//! free loopback port, and shares it between its tests; a watchdog stops it
//! when the test binary exits (also on a panic or a kill). Tests use unique
//! resource names ([`unique_name`]) so they never see each other's data.
//!
//! The emulators are installed into `.emulators/` by
//! `scripts/install-test-deps.sh` (which `scripts/test.sh` runs). A missing
//! install is a test failure with instructions, never a silent skip.
//!
//! - [`moto`]: `moto_server` — Kinesis, CloudWatch Logs, DynamoDB, S3.
//! - [`kinesis_mock`]: kinesis-mock — faithful Kinesis (shard end, child
//!   shards, realistic sequence numbers), for resharding tests.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A running emulator.
#[derive(Debug)]
pub struct Emulator {
    /// Its name, for messages.
    pub name: &'static str,
    /// The loopback port it listens on.
    pub port: u16,
    /// The watchdog shell that owns the server process; it exits (killing
    /// the server) when this test process is gone.
    _watchdog: std::process::Child,
}

impl Emulator {
    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// `moto_server`, its DynamoDB and its Kinesis records each served one
/// request at a time, as the services are atomic:
/// - moto's DynamoDB takes no lock between a condition check and its
///   update, so two conditional writes on one counter served by two threads
///   could both succeed, which DynamoDB never lets happen;
/// - moto's Kinesis gives a record the shard's highest sequence number + 1
///   and stores it under that number without a lock (its `Shard.put_record`
///   says "not safe for concurrency"), so two `PutRecords` on one shard at
///   once can both answer success for the same sequence number and keep
///   only one of the records.
///
/// The other services stay concurrent.
const MOTO_ATOMIC: &str = "\
import functools, threading
import moto.server as server
from moto.dynamodb.models import DynamoDBBackend
from moto.kinesis.models import KinesisBackend
def serialize(backend, names):
    lock = threading.RLock()
    def serialized(method):
        @functools.wraps(method)
        def call(*args, **kwargs):
            with lock:
                return method(*args, **kwargs)
        return call
    for name in names:
        if hasattr(backend, name):
            setattr(backend, name, serialized(getattr(backend, name)))
serialize(DynamoDBBackend, ('put_item', 'get_item', 'query', 'scan', 'update_item',
          'delete_item', 'transact_write_items', 'transact_get_items', 'batch_get_item'))
serialize(KinesisBackend, ('put_record', 'put_records', 'get_records',
          'get_shard_iterator', 'split_shard', 'merge_shards', 'update_shard_count'))
server.main()
";

/// The shared moto server of this test binary.
pub fn moto() -> &'static Emulator {
    static MOTO: OnceLock<Emulator> = OnceLock::new();
    MOTO.get_or_init(|| {
        let bin = emulators_dir().join("venv/bin/moto_server");
        require_installed(&bin);
        let python = emulators_dir().join("venv/bin/python");
        let port = free_port();
        start(
            "moto",
            port,
            "/moto-api/data.json",
            Command::new(python).args([
                "-c",
                MOTO_ATOMIC,
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ]),
        )
    })
}

/// The shared kinesis-mock server of this test binary.
pub fn kinesis_mock() -> &'static Emulator {
    static KINESIS_MOCK: OnceLock<Emulator> = OnceLock::new();
    KINESIS_MOCK.get_or_init(|| {
        let pkg = emulators_dir().join("node_modules/kinesis-local");
        let main = pkg.join("main.js");
        require_installed(&main);
        let port = free_port();
        let tls_port = free_port();
        let mut cmd = Command::new("node");
        cmd.arg(&main)
            .env("KINESIS_MOCK_PLAIN_PORT", port.to_string())
            .env("KINESIS_MOCK_TLS_PORT", tls_port.to_string())
            .env("KINESIS_MOCK_CERT_PATH", pkg.join("server.json"))
            .env("CREATE_STREAM_DURATION", "0ms")
            .env("DELETE_STREAM_DURATION", "0ms")
            .env("SPLIT_SHARD_DURATION", "0ms")
            .env("MERGE_SHARDS_DURATION", "0ms")
            .env("UPDATE_SHARD_COUNT_DURATION", "0ms")
            .env("REGISTER_STREAM_CONSUMER_DURATION", "0ms")
            .env("SHARD_LIMIT", "200")
            .env("LOG_LEVEL", "WARN");
        start("kinesis-mock", port, "/healthcheck", &mut cmd)
    })
}

/// A name no other test (in this or another test binary) uses.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos:x}", std::process::id())
}

/// An AWS SDK configuration pointing at `emulator`, with static test
/// credentials and nothing read from the environment or `~/.aws`.
#[cfg(any(
    feature = "kinesis",
    feature = "cloudwatch-logs",
    feature = "dynamodb",
    feature = "s3"
))]
pub async fn sdk_config(emulator: &Emulator) -> aws_config::SdkConfig {
    sdk_config_at(&emulator.endpoint()).await
}

/// The same as [`sdk_config`] for an emulator known by its endpoint only:
/// in a child process, which gets the endpoint from its parent.
#[cfg(any(
    feature = "kinesis",
    feature = "cloudwatch-logs",
    feature = "dynamodb",
    feature = "s3"
))]
pub async fn sdk_config_at(endpoint: &str) -> aws_config::SdkConfig {
    use aws_config::{BehaviorVersion, Region};
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .endpoint_url(endpoint)
        .empty_test_environment()
        .load()
        .await
}

/// An S3 client for `conf` (an emulator's), addressing buckets by path:
/// the emulator has no per-bucket host names.
#[cfg(feature = "s3")]
pub fn s3_client(conf: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(conf)
            .force_path_style(true)
            .build(),
    )
}

fn emulators_dir() -> PathBuf {
    std::env::var_os("UNISTREAM_EMULATORS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".emulators"))
}

fn require_installed(path: &std::path::Path) {
    assert!(
        path.exists(),
        "{} is missing: run `scripts/install-test-deps.sh` (scripts/test.sh runs it) \
         to install the local AWS emulators",
        path.display()
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// Starts `cmd` under a watchdog that kills it when this process exits, and
/// waits until `GET health_path` answers 200.
fn start(name: &'static str, port: u16, health_path: &str, cmd: &mut Command) -> Emulator {
    let log_path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{port}.log"));
    let log = std::fs::File::create(&log_path).expect("create emulator log");
    let program = cmd.get_program().to_os_string();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_os_string()).collect();
    let envs: Vec<_> = cmd
        .get_envs()
        .filter_map(|(k, v)| v.map(|v| (k.to_os_string(), v.to_os_string())))
        .collect();
    // The watchdog shell runs the server in the background and kills it as
    // soon as the test process (its parent) is gone.
    let script = r#"parent=$1; shift; "$@" & child=$!
        trap 'kill $child 2>/dev/null' EXIT
        while kill -0 "$parent" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 0.5; done"#;
    let watchdog = Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg("watchdog")
        .arg(std::process::id().to_string())
        .arg(program)
        .args(args)
        .envs(envs)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone log handle"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));

    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if http_status(port, health_path) == Some(200) {
            return Emulator {
                name,
                port,
                _watchdog: watchdog,
            };
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut watchdog = watchdog;
    let _ = watchdog.kill();
    let _ = watchdog.wait();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    panic!("{name} did not become ready on port {port} within 60 s; its log:\n{log}");
}

fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut stream =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}
