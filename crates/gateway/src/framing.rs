//! A guard in front of the HTTP/1 parser against request smuggling.
//!
//! hyper already refuses differing `Content-Length`s, a final coding other than chunked,
//! obs-fold and bare CR. Two framings it tolerates are refused here too: `Content-Length`
//! together with `Transfer-Encoding` (hyper reads by the coding and closes the connection
//! afterwards; RFC 9112 §6.1 lets a server refuse instead, which is what a front door should
//! do), and a bare LF as a line end. The guard follows the connection's framing (heads, then
//! `Content-Length` or chunked bodies) so that it looks at every request head and nothing else;
//! it holds back an incomplete head until it is whole. A refused head is handed on with its
//! first byte spoiled, so the parser answers 400 and closes the connection, and nothing of it
//! reaches a route. HTTP/2 and upgraded connections are passed through untouched.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Past this, an unfinished head is handed on as it is (hyper answers 431).
const HEAD_MAX: usize = 256 * 1024;
/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;
/// A chunk-size line this long is not one.
const LINE_MAX: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Body(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkDataEnd,
    Trailers,
    /// HTTP/2, an upgrade, or a connection given up on: no more looking.
    Passthrough,
}

/// An I/O stream whose reads are checked request by request.
pub(crate) struct Guarded<S> {
    inner: S,
    /// A head held back here must be whole within this time (the parser's own head timeout
    /// only starts once it is handed bytes).
    head_timeout: Duration,
    head_deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    scratch: Option<Box<[u8]>>,
    state: State,
    /// Read but not yet examined.
    pending: BytesMut,
    /// Examined, to be handed to the parser.
    ready: BytesMut,
    eof: bool,
}

impl<S> Guarded<S> {
    pub(crate) fn new(inner: S, head_timeout: Duration) -> Guarded<S> {
        Guarded {
            inner,
            head_timeout,
            head_deadline: None,
            scratch: None,
            state: State::Head,
            pending: BytesMut::new(),
            ready: BytesMut::new(),
            eof: false,
        }
    }

    /// Hands on up to `n` body bytes; returns how many of the `n` are still to come.
    fn pass(&mut self, n: u64) -> u64 {
        let take = usize::try_from(n)
            .unwrap_or(usize::MAX)
            .min(self.pending.len());
        let part = self.pending.split_to(take);
        self.ready.unsplit(part);
        n - take as u64
    }

    /// Moves what can be judged from `pending` to `ready`.
    fn process(&mut self) {
        loop {
            match self.state {
                State::Passthrough => {
                    let all = self.pending.split();
                    self.ready.unsplit(all);
                    return;
                }
                State::Head => {
                    // Empty lines before a request line are skipped by the parser; keep them.
                    let skip = self
                        .pending
                        .iter()
                        .take_while(|b| **b == b'\r' || **b == b'\n')
                        .count();
                    let Some(end) = head_end(&self.pending[skip..]) else {
                        if self.pending.len() > HEAD_MAX || self.eof {
                            self.state = State::Passthrough;
                            continue;
                        }
                        return;
                    };
                    let end = skip + end;
                    let verdict = judge(&self.pending[skip..end]);
                    let mut head = self.pending.split_to(end);
                    match verdict {
                        Verdict::Refuse => {
                            // The parser refuses a request line starting with a control byte.
                            if let Some(b) = head.get_mut(skip) {
                                *b = 0x01;
                            }
                            self.state = State::Passthrough;
                        }
                        Verdict::Passthrough => self.state = State::Passthrough,
                        Verdict::Length(0) | Verdict::NoBody => self.state = State::Head,
                        Verdict::Length(n) => self.state = State::Body(n),
                        Verdict::Chunked => self.state = State::ChunkSize,
                    }
                    self.ready.unsplit(head);
                }
                State::Body(n) => {
                    if self.pending.is_empty() {
                        return;
                    }
                    let left = self.pass(n);
                    self.state = if left == 0 {
                        State::Head
                    } else {
                        State::Body(left)
                    };
                }
                State::ChunkSize | State::ChunkDataEnd | State::Trailers => {
                    let Some(nl) = self.pending.iter().position(|b| *b == b'\n') else {
                        if self.pending.len() > LINE_MAX || self.eof {
                            self.state = State::Passthrough;
                            continue;
                        }
                        return;
                    };
                    let line = self.pending.split_to(nl + 1);
                    self.state = match self.state {
                        State::ChunkSize => match chunk_size(&line) {
                            Some(0) => State::Trailers,
                            Some(n) => State::ChunkData(n),
                            // Malformed: the parser refuses it; stop following.
                            None => State::Passthrough,
                        },
                        State::ChunkDataEnd => State::ChunkSize,
                        _ => {
                            if line.as_ref() == b"\r\n" || line.as_ref() == b"\n" {
                                State::Head
                            } else {
                                State::Trailers
                            }
                        }
                    };
                    self.ready.unsplit(line);
                }
                State::ChunkData(n) => {
                    if self.pending.is_empty() {
                        return;
                    }
                    let left = self.pass(n);
                    self.state = if left == 0 {
                        State::ChunkDataEnd
                    } else {
                        State::ChunkData(left)
                    };
                }
            }
        }
    }
}

/// The end of a head (after its empty line), if it is all there.
pub(crate) fn head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(p) = memchr(b'\n', &buf[i..]) {
        let at = i + p;
        match buf.get(at + 1) {
            Some(b'\n') => return Some(at + 2),
            Some(b'\r') if buf.get(at + 2) == Some(&b'\n') => return Some(at + 3),
            Some(_) => i = at + 1,
            None => return None,
        }
    }
    None
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|b| *b == needle)
}

pub(crate) enum Verdict {
    Refuse,
    Passthrough,
    NoBody,
    Length(u64),
    Chunked,
}

pub(crate) fn judge(head: &[u8]) -> Verdict {
    if head.starts_with(b"PRI * HTTP/2.0") {
        return Verdict::Passthrough;
    }
    let mut length: Option<u64> = None;
    let mut te = false;
    let mut chunked = false;
    let mut upgrade = false;
    let mut lines = head.split(|b| *b == b'\n');
    for (i, line) in lines.by_ref().enumerate() {
        if line.is_empty() {
            // The end of the head: the final LF of the empty line.
            break;
        }
        // Every line ends in CR LF; a CR anywhere else is bare.
        let Some(body) = line.strip_suffix(b"\r") else {
            return Verdict::Refuse;
        };
        if body.contains(&b'\r') {
            return Verdict::Refuse;
        }
        if body.is_empty() || i == 0 {
            continue;
        }
        let Some(colon) = memchr(b':', body) else {
            // Let the parser say what is wrong.
            continue;
        };
        let name = &body[..colon];
        let value = trim(&body[colon + 1..]);
        if name.eq_ignore_ascii_case(b"content-length") {
            match std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
            {
                Some(n) if length.is_none_or(|l| l == n) => length = Some(n),
                // Differing or malformed: refused.
                _ => return Verdict::Refuse,
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te = true;
            let last = value.rsplit(|b| *b == b',').next().map(trim).unwrap_or(b"");
            chunked = last.eq_ignore_ascii_case(b"chunked");
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            upgrade = true;
        }
    }
    if te && length.is_some() {
        return Verdict::Refuse;
    }
    if upgrade {
        // Whether the upgrade happens only the response tells; the parser still frames what
        // follows if it does not.
        return Verdict::Passthrough;
    }
    if te {
        return if chunked {
            Verdict::Chunked
        } else {
            Verdict::Refuse
        };
    }
    match length {
        Some(n) => Verdict::Length(n),
        None => Verdict::NoBody,
    }
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &v[start..end]
}

fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits: Vec<u8> = line
        .iter()
        .copied()
        .take_while(u8::is_ascii_hexdigit)
        .collect();
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(&digits).ok()?, 16).ok()
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.ready.is_empty() {
                let n = this.ready.len().min(out.remaining());
                out.put_slice(&this.ready[..n]);
                this.ready.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.state == State::Passthrough && this.pending.is_empty() {
                return Pin::new(&mut this.inner).poll_read(cx, out);
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            // A buffer zeroed once per connection, not per read.
            let scratch = this
                .scratch
                .get_or_insert_with(|| vec![0u8; READ_CHUNK].into_boxed_slice());
            let mut rb = ReadBuf::new(scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                Poll::Pending => {
                    if this.state == State::Head && !this.pending.is_empty() {
                        let timeout = this.head_timeout;
                        let deadline = this
                            .head_deadline
                            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                        if deadline.as_mut().poll(cx).is_ready() {
                            return Poll::Ready(Err(io::Error::new(
                                io::ErrorKind::TimedOut,
                                "request head not received in time",
                            )));
                        }
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {
                    if rb.filled().is_empty() {
                        this.eof = true;
                    } else {
                        this.pending.extend_from_slice(rb.filled());
                    }
                    this.process();
                    if this.state != State::Head || this.pending.is_empty() {
                        this.head_deadline = None;
                    }
                    if this.eof && this.ready.is_empty() {
                        let rest = this.pending.split();
                        this.ready.unsplit(rest);
                        if this.ready.is_empty() {
                            return Poll::Ready(Ok(()));
                        }
                    }
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// What the parser would be handed for `input`, fed in pieces of `step` bytes.
    async fn through(input: &[u8], step: usize) -> Vec<u8> {
        let (mut a, b) = tokio::io::duplex(1 << 20);
        let data = input.to_vec();
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for piece in data.chunks(step) {
                a.write_all(piece).await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        let mut g = Guarded::new(b, std::time::Duration::from_secs(5));
        let mut out = Vec::new();
        let mut buf = [0u8; 7];
        writer.await.unwrap();
        loop {
            let n = tokio::time::timeout(std::time::Duration::from_millis(200), g.read(&mut buf))
                .await
                .unwrap_or(Ok(0))
                .unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    #[tokio::test]
    async fn honest_traffic_passes_unchanged_in_any_pieces() {
        let traffic = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nPOST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloPOST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\n";
        for step in [1, 3, 7, 64, 4096] {
            assert_eq!(
                through(traffic, step).await,
                traffic.to_vec(),
                "step {step}"
            );
        }
    }

    #[tokio::test]
    async fn smuggling_heads_are_spoiled_even_after_honest_ones() {
        let cases: [&[u8]; 4] = [
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
            b"GET / HTTP/1.1\nHost: x\n\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        ];
        for case in cases {
            let mut traffic =
                b"POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\nGET /not-a-head\r\n"
                    .to_vec();
            let honest = traffic.len();
            traffic.extend_from_slice(case);
            let out = through(&traffic, 5).await;
            assert_eq!(&out[..honest], &traffic[..honest]);
            assert_eq!(out[honest], 0x01, "{}", String::from_utf8_lossy(case));
        }
    }

    #[test]
    fn heads_end_at_the_empty_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\nrest"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }
}
