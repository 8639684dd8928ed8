//! The smallest HTTP/1.1 server the SDK needs: keep-alive connections, one
//! request at a time per connection, bodies by `Content-Length` (the SDK
//! sends its JSON bodies so), answers with a `Content-Length`.
//!
//! Guarantees: a malformed request or one with a chunked body gets an HTTP
//! error answer and the connection closes; a connection that closes between
//! requests ends quietly. Does not: TLS, pipelining, `Expect: 100-continue`.

use std::future::Future;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request: its headers (names lower-cased) and body.
#[derive(Debug)]
pub struct Request {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One answer.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Headers beyond this size are refused (the SDK's are a few hundred bytes).
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Serves every connection accepted on `listener` with `handle`, each
/// connection on its own task, until the task running this is aborted.
pub async fn serve<H, F>(listener: TcpListener, handle: H)
where
    H: Fn(Request) -> F + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    let handle = Arc::new(handle);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let handle = handle.clone();
        connections.spawn(async move {
            let _ = connection(stream, &*handle).await;
        });
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
}

async fn connection<H, F>(mut stream: TcpStream, handle: &H) -> std::io::Result<()>
where
    H: Fn(Request) -> F,
    F: Future<Output = Response>,
{
    let mut buffer = Vec::with_capacity(16 * 1024);
    loop {
        let head_end = loop {
            if let Some(end) = find_head_end(&buffer) {
                break end;
            }
            if buffer.len() > MAX_HEAD_BYTES {
                return answer_error(&mut stream, 431).await;
            }
            if read_more(&mut stream, &mut buffer).await? == 0 {
                return Ok(()); // closed between requests
            }
        };
        let Some((headers, length)) = parse_head(&buffer[..head_end]) else {
            return answer_error(&mut stream, 400).await;
        };
        while buffer.len() < head_end + length {
            if read_more(&mut stream, &mut buffer).await? == 0 {
                return Ok(());
            }
        }
        let body = buffer[head_end..head_end + length].to_vec();
        buffer.drain(..head_end + length);
        let close = headers
            .iter()
            .any(|(n, v)| n == "connection" && v.eq_ignore_ascii_case("close"));
        let response = handle(Request { headers, body }).await;
        write_response(&mut stream, &response).await?;
        if close {
            return Ok(());
        }
    }
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk).await?;
    buffer.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// The end of the head (after its blank line), if it is all in `buffer`.
fn find_head_end(buffer: &[u8]) -> Option<usize> {
    buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
}

/// The headers and the body length of a request head; `None` if it is
/// malformed or its body is chunked.
fn parse_head(head: &[u8]) -> Option<(Vec<(String, String)>, usize)> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next()?;
    if !request_line.ends_with("HTTP/1.1") {
        return None;
    }
    let mut headers = Vec::new();
    let mut length = 0;
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim().to_owned();
        match name.as_str() {
            "content-length" => length = value.parse().ok()?,
            "transfer-encoding" => return None,
            _ => {}
        }
        headers.push((name, value));
    }
    Some((headers, length))
}

async fn write_response(stream: &mut TcpStream, response: &Response) -> std::io::Result<()> {
    let reason = match response.status {
        200 => "OK",
        400 => "Bad Request",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    };
    let mut out = format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\nx-amzn-requestid: stub\r\n\r\n",
        response.status,
        response.body.len()
    )
    .into_bytes();
    out.extend_from_slice(&response.body);
    stream.write_all(&out).await
}

async fn answer_error(stream: &mut TcpStream, status: u16) -> std::io::Result<()> {
    let body = br#"{"__type":"SerializationException","message":"malformed request"}"#.to_vec();
    write_response(stream, &Response { status, body }).await
}
