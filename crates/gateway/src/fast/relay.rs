//! The fast path's response relay: the client's head and the first part of the body in one
//! write, the rest streamed as it arrives (by length, chunked, or to the connection's end), and
//! the errors the fast path answers itself.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::READ_CHUNK;
use super::head::header_line;
use super::upstream::{Framing, SECURITY, Upstream};
use crate::{framing, respond};

/// Writes `out` (the client head) and the body to the client. Ok with the body's size when
/// both ends are still usable; Err with the bytes sent when either failed.
pub(super) async fn relay<S: AsyncWrite + Unpin>(
    client: &mut S,
    out: &mut Vec<u8>,
    up_buf: &mut BytesMut,
    res: &mut Upstream,
) -> Result<u64, u64> {
    let Some(mut conn) = res.conn.take() else {
        return Err(0);
    };
    let mut sent: u64 = 0;
    let mut chunks = ChunkTracker::default();
    // What of the body is already here goes out with the head.
    let mut done = match res.framing {
        Framing::Length(n) => {
            let take = usize::try_from(n).unwrap_or(usize::MAX).min(up_buf.len());
            out.extend_from_slice(&up_buf[..take]);
            up_buf.advance(take);
            sent += take as u64;
            sent == n
        }
        Framing::Chunked => {
            let used = chunks.feed(up_buf);
            out.extend_from_slice(&up_buf[..used]);
            up_buf.advance(used);
            sent += used as u64;
            chunks.done()
        }
        Framing::Close => {
            out.extend_from_slice(up_buf);
            sent += up_buf.len() as u64;
            up_buf.clear();
            false
        }
    };
    if client.write_all(out).await.is_err() {
        return Err(sent);
    }
    while !done {
        up_buf.clear();
        up_buf.reserve(READ_CHUNK);
        let n = match conn.read_buf(up_buf).await {
            Ok(0) => {
                if res.framing == Framing::Close {
                    break;
                }
                // The upstream left mid-body: the client cannot be told but by closing.
                return Err(sent);
            }
            Ok(n) => n,
            Err(_) => return Err(sent),
        };
        let take = match res.framing {
            Framing::Length(total) => {
                let left = usize::try_from(total - sent).unwrap_or(usize::MAX);
                let take = n.min(left);
                done = sent + take as u64 == total;
                take
            }
            Framing::Chunked => {
                let used = chunks.feed(up_buf);
                done = chunks.done();
                used
            }
            Framing::Close => n,
        };
        if client.write_all(&up_buf[..take]).await.is_err() {
            return Err(sent);
        }
        sent += take as u64;
        // Anything left past the body's end keeps the connection from being reused.
        up_buf.advance(take);
    }
    if res.reusable && up_buf.is_empty() {
        res.slot.member().raw.push(conn);
    }
    Ok(sent)
}

/// Follows a chunked body's framing to find where it ends (the bytes pass through as they
/// are).
#[derive(Default)]
pub(super) struct ChunkTracker {
    pub(super) state: ChunkState,
    /// A size or trailer line not yet whole.
    pub(super) line: Vec<u8>,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
pub(super) enum ChunkState {
    #[default]
    Size,
    Data(u64),
    /// The CR LF after a chunk's data.
    DataEnd(u8),
    Trailers,
    Done,
    /// Not chunked after all: treated as ending with the connection.
    Broken,
}

impl ChunkTracker {
    pub(super) fn done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Consumes what belongs to the body from the front of `bytes`; returns how much.
    pub(super) fn feed(&mut self, bytes: &[u8]) -> usize {
        let mut i = 0;
        while i < bytes.len() {
            match self.state {
                ChunkState::Done => return i,
                ChunkState::Broken => return bytes.len(),
                ChunkState::Data(left) => {
                    let take = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len() - i);
                    i += take;
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd(0)
                    } else {
                        ChunkState::Data(left)
                    };
                }
                ChunkState::DataEnd(seen) => {
                    let want = if seen == 0 { b'\r' } else { b'\n' };
                    if bytes[i] != want {
                        self.state = ChunkState::Broken;
                        continue;
                    }
                    i += 1;
                    self.state = if seen == 0 {
                        ChunkState::DataEnd(1)
                    } else {
                        ChunkState::Size
                    };
                }
                ChunkState::Size | ChunkState::Trailers => {
                    let b = bytes[i];
                    i += 1;
                    if b != b'\n' {
                        if self.line.len() > 4096 {
                            self.state = ChunkState::Broken;
                        } else {
                            self.line.push(b);
                        }
                        continue;
                    }
                    let line = std::mem::take(&mut self.line);
                    let line = line.strip_suffix(b"\r").unwrap_or(&line);
                    if self.state == ChunkState::Trailers {
                        if line.is_empty() {
                            self.state = ChunkState::Done;
                        }
                        continue;
                    }
                    let digits: &[u8] = line.split(|c| *c == b';').next().unwrap_or_default();
                    let size = std::str::from_utf8(digits)
                        .ok()
                        .and_then(|d| u64::from_str_radix(d.trim(), 16).ok());
                    self.state = match size {
                        Some(0) => ChunkState::Trailers,
                        Some(n) => ChunkState::Data(n),
                        None => ChunkState::Broken,
                    };
                }
            }
        }
        i
    }
}

/// Adds a header to a whole response in `out` (a head, its empty line, a body).
pub(super) fn insert_before_blank_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    if let Some(end) = framing::head_end(out) {
        let mut line = Vec::with_capacity(name.len() + value.len() + 4);
        header_line(&mut line, name, value);
        let at = end - 2;
        out.splice(at..at, line);
    }
}

/// PocketBase's JSON error, as a whole response.
pub(super) fn write_error(out: &mut Vec<u8>, status: u16, message: &str, id: &[u8], close: bool) {
    let body = format!(
        "{{\"data\":{{}},\"message\":{},\"status\":{status}}}",
        respond::json_string(message)
    );
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    out.extend_from_slice(format!("HTTP/1.1 {status} {reason}\r\n").as_bytes());
    header_line(out, b"content-type", b"application/json");
    header_line(out, b"content-length", body.len().to_string().as_bytes());
    for (n, v) in SECURITY {
        header_line(out, n.as_bytes(), v.as_bytes());
    }
    header_line(out, b"x-request-id", id);
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_tracking_finds_the_end_in_any_pieces() {
        let body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        for step in 1..body.len() {
            let mut t = ChunkTracker::default();
            let mut used = 0;
            for piece in body.chunks(step) {
                if t.done() {
                    break;
                }
                used += t.feed(piece);
            }
            assert!(t.done(), "step {step}");
            assert_eq!(used, body.len() - 4, "step {step}");
        }
        let mut t = ChunkTracker::default();
        t.feed(b"zz\r\n");
        assert!(!t.done());
        assert_eq!(
            t.feed(b"more"),
            4,
            "a broken body runs to the connection's end"
        );
    }
}
