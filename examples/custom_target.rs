//! A custom target in about ten lines: an HTTP JSON endpoint behind `buffered_wal`.
//!
//! The target is one `async` closure over a batch (`batch_target`): it POSTs
//! the batch as JSON and turns the answer into the batch-sink protocol —
//! `Ok`, `Error::Rejected` for the records the endpoint refuses, any other
//! error for a retry. `buffered_wal` makes it durable, batched and retried;
//! refused records go to a dead-letter file.
//!
//! The endpoint is served inside the example (a tiny HTTP server on a
//! loopback port) and misbehaves on purpose: every fourth request answers
//! `500`, and orders with a negative amount are refused. The example ends on
//! its own with a summary and fails if any order was lost.
//!
//! Run with `cargo run --example custom_target` (default features).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use unistream::sink::{batch_target, FileSink, WalConfig, WalSinkExt};
use unistream::{Error, RejectedRecord, RetryPolicy};

const ORDERS: i64 = 300;
/// The target's name in errors and dead letters.
const API: &str = "orders API";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    id: i64,
    amount: i64,
}

/// The endpoint's answer to a `200`: the indices it refused, and why.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Reply {
    rejected: Vec<Refused>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Refused {
    index: usize,
    reason: String,
}

impl From<Refused> for RejectedRecord {
    fn from(refused: Refused) -> Self {
        RejectedRecord::new(refused.index, refused.reason)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoint = Endpoint::start().await?;
    let dir = tempfile::tempdir()?;
    let addr = endpoint.addr;

    // --- the target ---
    let target = batch_target(move |orders: Vec<Order>| async move {
        let (status, answer) = post_json(addr, "/orders", &orders)
            .await
            .map_err(|e| Error::target(API, e))?;
        if status != 200 {
            return Err(Error::target(API, format!("HTTP {status}"))); // sent again
        }
        let reply: Reply = serde_json::from_slice(&answer).map_err(|e| Error::target(API, e))?;
        let refused: Vec<RejectedRecord> = reply.rejected.into_iter().map(Into::into).collect();
        if refused.is_empty() {
            Ok(())
        } else {
            Err(Error::Rejected(refused)) // dead-lettered, the rest is stored
        }
    });
    // --- end of the target ---

    let dead_letters = dir.path().join("dead-letters.jsonl");
    let sink = target
        .buffered_wal(
            WalConfig::new(dir.path().join("wal"))
                .max_records(25)
                .max_age(Duration::from_millis(20))
                .retry(
                    RetryPolicy::new()
                        .max_attempts(6)
                        .initial_backoff(Duration::from_millis(5)),
                )
                .dead_letter(FileSink::open(&dead_letters).await?),
        )
        .await?;

    let orders = (0..ORDERS).map(|id| Order {
        id,
        amount: if id % 37 == 5 { -1 } else { id * 10 },
    });
    // `forward` closes the sink: everything delivered or dead-lettered.
    stream::iter(orders).map(Ok).forward(sink).await?;

    let stored = endpoint
        .stored
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .len();
    let dead = std::fs::read_to_string(&dead_letters)?.lines().count();
    println!("orders sent:                 {ORDERS}");
    println!("stored by the endpoint:      {stored}");
    println!("dead-lettered (refused):     {dead}");
    println!(
        "requests / answered 500:     {} / {}",
        endpoint.requests.load(Ordering::SeqCst),
        endpoint.failures.load(Ordering::SeqCst)
    );
    if stored + dead != ORDERS as usize {
        return Err(format!("lost orders: {stored} stored + {dead} dead-lettered").into());
    }
    println!("nothing lost");
    Ok(())
}

/// POSTs `body` as JSON (what an HTTP client crate's `.json(body)` does);
/// the status code and the body of the answer.
async fn post_json(
    addr: SocketAddr,
    path: &str,
    body: &impl Serialize,
) -> std::io::Result<(u16, Vec<u8>)> {
    let body = serde_json::to_vec(body)?;
    let mut conn = TcpStream::connect(addr).await?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(&body).await?;
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await?;
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP answer"))?;
    let start = text.find("\r\n\r\n").map_or(answer.len(), |i| i + 4);
    Ok((status, answer[start..].to_vec()))
}

/// The orders endpoint: stores the orders it accepts; answers `500` to every
/// fourth request (storing nothing) and refuses negative amounts.
struct Endpoint {
    addr: SocketAddr,
    stored: Arc<Mutex<Vec<Order>>>,
    requests: Arc<AtomicUsize>,
    failures: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl Endpoint {
    async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let stored = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(AtomicUsize::new(0));
        let state = (stored.clone(), requests.clone(), failures.clone());
        let server = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (stored, requests, failures) = state.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve(conn, &stored, &requests, &failures).await {
                        eprintln!("endpoint: {e}");
                    }
                });
            }
        });
        Ok(Self {
            addr,
            stored,
            requests,
            failures,
            server,
        })
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Answers one request.
async fn serve(
    conn: TcpStream,
    stored: &Mutex<Vec<Order>>,
    requests: &AtomicUsize,
    failures: &AtomicUsize,
) -> std::io::Result<()> {
    let mut conn = BufReader::new(conn);
    let mut length = 0;
    loop {
        let mut line = String::new();
        conn.read_line(&mut line).await?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    conn.read_exact(&mut body).await?;

    let (status, answer) = if requests.fetch_add(1, Ordering::SeqCst) % 4 == 3 {
        failures.fetch_add(1, Ordering::SeqCst);
        ("500 Internal Server Error", Vec::new())
    } else {
        match serde_json::from_slice::<Vec<Order>>(&body) {
            Err(e) => ("400 Bad Request", e.to_string().into_bytes()),
            Ok(orders) => {
                let mut reply = Reply::default();
                let mut stored = stored.lock().unwrap_or_else(|e| e.into_inner());
                for (index, order) in orders.into_iter().enumerate() {
                    if order.amount < 0 {
                        let reason = format!("order {}: negative amount", order.id);
                        reply.rejected.push(Refused { index, reason });
                    } else {
                        stored.push(order);
                    }
                }
                ("200 OK", serde_json::to_vec(&reply).unwrap_or_default())
            }
        }
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        answer.len()
    );
    let conn = conn.get_mut();
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(&answer).await?;
    conn.shutdown().await
}
