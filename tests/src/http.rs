//! A minimal HTTP/1.1 client over a plain TCP connection, for end-to-end tests that send a
//! service a request no real client would send (a wrong token, a body that is not JSON, a
//! body over the server's limit) and read its answer as it is.
//!
//! One request per connection (`Connection: close`); the answer is read to the end of the
//! connection, and a chunked body is decoded.

use anyhow::Context as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What a server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    /// The status code.
    pub status: u16,
    /// The body, lossily decoded as UTF-8 (error bodies are text or JSON).
    pub body: String,
}

/// POSTs `body` to `http://{address}{path}` with `headers`; returns the answer.
///
/// The body is written while the answer is read: a server may answer (413, 401) before it
/// has read the whole body and close the connection, and the answer is what the test wants.
pub async fn post(
    address: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> anyhow::Result<HttpAnswer> {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .with_context(|| format!("connecting to {address}"))?;
    let (mut reader, mut writer) = stream.into_split();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let write = async {
        // A server that answered early may have closed its end: what it answered counts,
        // not whether the rest of the body got through.
        if writer.write_all(head.as_bytes()).await.is_ok() {
            let _ = writer.write_all(body).await;
        }
    };
    let read = async {
        let mut response = Vec::new();
        let read = reader.read_to_end(&mut response).await;
        (read, response)
    };
    let ((), (read, response)) = tokio::join!(write, read);
    // A reset after the answer arrived still leaves the answer.
    if response.is_empty() {
        read.with_context(|| format!("reading the answer of {address}"))?;
    }
    parse_response(&response)
        .map_err(|detail| anyhow::anyhow!("the answer of {address} is not a response: {detail}"))
}

fn parse_response(response: &[u8]) -> Result<HttpAnswer, String> {
    let split = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in {} bytes", response.len()))?;
    let head = String::from_utf8_lossy(&response[..split]);
    let body = &response[split + 4..];
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("no status code in {status_line:?}"))?;
    let chunked = lines.any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("transfer-encoding:") && line.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok(HttpAnswer {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Decodes a `Transfer-Encoding: chunked` body.
fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut decoded = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|window| window == b"\r\n")
            .ok_or("a chunk size line without its end")?;
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size_digits = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_digits, 16)
            .map_err(|error| format!("chunk size {size_digits:?}: {error}"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(decoded);
        }
        let chunk = body.get(..size).ok_or("a chunk shorter than its size")?;
        decoded.extend_from_slice(chunk);
        body = body.get(size + 2..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_with_a_length_or_chunks_is_read() {
        let plain = b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 9\r\n\r\n{\"a\":\"b\"}";
        assert_eq!(
            parse_response(plain).unwrap(),
            HttpAnswer {
                status: 401,
                body: "{\"a\":\"b\"}".into()
            }
        );
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap().body, "abcde");
        assert!(parse_response(b"garbage").is_err());
    }
}
