//! A guard in front of the HTTP/1 parser: request smuggling and the message rules of RFC 9112.
//!
//! hyper already refuses differing `Content-Length`s, a final coding other than chunked,
//! obs-fold and bare CR. The guard refuses what it tolerates: `Content-Length` together with
//! `Transfer-Encoding` (hyper reads by the coding and closes the connection afterwards; RFC
//! 9112 §6.1 lets a server refuse instead, which is what a front door should do), a bare LF as
//! a line end, an HTTP/1.1 request without a `Host` or with more than one (§3.2), a `Host` that
//! is not one, a line over `gateway.max_header_line_bytes` and a head over
//! `gateway.max_header_bytes` (as nginx's `large_client_header_buffers`). It follows the
//! connection's framing (heads, then `Content-Length` or chunked bodies) so that it looks at
//! every request head and nothing else, and holds back an incomplete head until it is whole.
//!
//! A refused head never reaches the parser: in its place the guard hands on a request of its
//! own that names the refusal with the gateway's secret marker (`Rules::marker`), which
//! `message::check` answers with the refusal's status in PocketBase's error shape and
//! `Connection: close`. Being in the byte stream, the answer comes after those of the requests
//! before it, whatever the pipelining; nothing after the refused head is read. HTTP/2 and
//! allowed upgrades are passed through untouched; an upgrade to a protocol the gateway does not
//! pass on (`h2c` above all) is framed as an ordinary request.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::message::Refusal;

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
    /// A head was refused: nothing more is read from the client.
    Refused,
}

/// The limits and choices the guard applies, from the gateway's settings.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    /// The largest head (431 beyond).
    pub(crate) head_max: usize,
    /// The longest request line (414 beyond) or header line (431 beyond).
    pub(crate) line_max: usize,
    /// `Upgrade` protocols passed on, lower-case.
    pub(crate) upgrades: Vec<String>,
    /// Proves that a refusal request comes from the guard and not from a client.
    pub(crate) marker: String,
}

impl Rules {
    /// Whether `Upgrade: value` asks for a protocol passed on (the first one named decides).
    pub(crate) fn allows_upgrade(&self, value: &[u8]) -> bool {
        let first = value.split(|b| *b == b',').next().map(trim).unwrap_or(b"");
        // `websocket` and `websocket/13` alike.
        let name = first.split(|b| *b == b'/').next().unwrap_or(b"");
        !name.is_empty()
            && self
                .upgrades
                .iter()
                .any(|u| u.as_bytes().eq_ignore_ascii_case(name))
    }
}

/// An I/O stream whose reads are checked request by request.
pub(crate) struct Guarded<S> {
    inner: S,
    rules: std::sync::Arc<Rules>,
    /// A head held back here must be whole within this time (the parser's own head timeout
    /// only starts once it is handed bytes).
    head_timeout: Duration,
    head_deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The read buffer, while a read is under way; an idle connection holds none (an open
    /// stream, such as a realtime subscriber's, would otherwise keep 16 KiB for its life).
    scratch: Option<Box<[std::mem::MaybeUninit<u8>]>>,
    state: State,
    /// Read but not yet examined.
    pending: BytesMut,
    /// Examined, to be handed to the parser.
    ready: BytesMut,
    eof: bool,
}

impl<S> Guarded<S> {
    pub(crate) fn new(
        inner: S,
        head_timeout: Duration,
        rules: std::sync::Arc<Rules>,
    ) -> Guarded<S> {
        Guarded {
            inner,
            rules,
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

    /// Puts the guard's own request in place of a refused head and reads nothing more.
    fn refuse(&mut self, refusal: Refusal) {
        tracing::debug!(reason = refusal.code(), "request head refused");
        self.pending.clear();
        self.ready
            .extend_from_slice(&refusal.request(&self.rules.marker));
        self.state = State::Refused;
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
                State::Refused => {
                    self.pending.clear();
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
                        if let Some(refusal) = unfinished(&self.pending[skip..], &self.rules) {
                            self.refuse(refusal);
                            return;
                        }
                        if self.eof {
                            self.state = State::Passthrough;
                            continue;
                        }
                        return;
                    };
                    let end = skip + end;
                    let verdict = judge(&self.pending[skip..end], &self.rules);
                    if let Verdict::Refuse(refusal) = verdict {
                        self.refuse(refusal);
                        return;
                    }
                    let head = self.pending.split_to(end);
                    match verdict {
                        Verdict::Refuse(_) => {}
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
    Refuse(Refusal),
    Passthrough,
    NoBody,
    Length(u64),
    Chunked,
}

/// What an unfinished head already breaks: the limits on the head and on its lines.
fn unfinished(head: &[u8], rules: &Rules) -> Option<Refusal> {
    if head.len() > rules.head_max {
        return Some(Refusal::LargeHead);
    }
    let mut lines = head.split(|b| *b == b'\n');
    if lines.next().is_some_and(|l| l.len() > rules.line_max) {
        return Some(Refusal::LongRequestLine);
    }
    lines
        .any(|l| l.len() > rules.line_max)
        .then_some(Refusal::LongHeaderLine)
}

/// The framing of a whole head, or why it is refused.
pub(crate) fn judge(head: &[u8], rules: &Rules) -> Verdict {
    if head.starts_with(b"PRI * HTTP/2.0") {
        return Verdict::Passthrough;
    }
    if head.len() > rules.head_max {
        return Verdict::Refuse(Refusal::LargeHead);
    }
    let mut length: Option<u64> = None;
    let mut te = false;
    let mut chunked = false;
    let mut upgrade = false;
    let mut connection_upgrade = false;
    let mut hosts = 0usize;
    let mut bad_host = false;
    let mut http11 = true;
    let lines = head.split(|b| *b == b'\n');
    for (i, line) in lines.enumerate() {
        if line.is_empty() {
            // The end of the head: the final LF of the empty line.
            break;
        }
        // Every line ends in CR LF; a CR anywhere else is bare.
        let Some(body) = line.strip_suffix(b"\r") else {
            return Verdict::Refuse(Refusal::Framing);
        };
        if body.contains(&b'\r') {
            return Verdict::Refuse(Refusal::Framing);
        }
        if line.len() > rules.line_max {
            return Verdict::Refuse(if i == 0 {
                Refusal::LongRequestLine
            } else {
                Refusal::LongHeaderLine
            });
        }
        if i == 0 {
            // HTTP/1.0 has no Host rule; anything else the parser judges.
            http11 = !body.ends_with(b" HTTP/1.0");
            continue;
        }
        if body.is_empty() {
            continue;
        }
        let Some(colon) = memchr(b':', body) else {
            // Let the parser say what is wrong.
            continue;
        };
        let name = &body[..colon];
        let value = trim(&body[colon + 1..]);
        if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
            bad_host |= !valid_host(value);
        } else if name.eq_ignore_ascii_case(b"content-length") {
            // 1*DIGIT (RFC 9110 §8.6): Rust's parser would also take a sign.
            let digits = !value.is_empty() && value.iter().all(u8::is_ascii_digit);
            match std::str::from_utf8(value)
                .ok()
                .filter(|_| digits)
                .and_then(|v| v.parse::<u64>().ok())
            {
                Some(n) if length.is_none_or(|l| l == n) => length = Some(n),
                // Differing or malformed: refused.
                _ => return Verdict::Refuse(Refusal::Framing),
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te = true;
            let last = value.rsplit(|b| *b == b',').next().map(trim).unwrap_or(b"");
            chunked = last.eq_ignore_ascii_case(b"chunked");
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            upgrade |= rules.allows_upgrade(value);
        } else if name.eq_ignore_ascii_case(b"connection") {
            connection_upgrade |= value
                .split(|b| *b == b',')
                .any(|t| trim(t).eq_ignore_ascii_case(b"upgrade"));
        }
    }
    if hosts > 1 {
        return Verdict::Refuse(Refusal::TwoHosts);
    }
    if hosts == 0 && http11 {
        return Verdict::Refuse(Refusal::MissingHost);
    }
    if bad_host {
        return Verdict::Refuse(Refusal::BadHost);
    }
    if te && length.is_some() {
        return Verdict::Refuse(Refusal::Framing);
    }
    if upgrade && connection_upgrade {
        // Whether the upgrade happens only the response tells; the parser still frames what
        // follows if it does not.
        return Verdict::Passthrough;
    }
    if te {
        return if chunked {
            Verdict::Chunked
        } else {
            Verdict::Refuse(Refusal::Framing)
        };
    }
    match length {
        Some(n) => Verdict::Length(n),
        None => Verdict::NoBody,
    }
}

/// `uri-host [":" port]` (RFC 9110 §7.2), or empty (allowed when the target has no authority).
fn valid_host(value: &[u8]) -> bool {
    if value.is_empty() {
        return true;
    }
    let (host, port) = match value.strip_prefix(b"[") {
        // An IP literal.
        Some(rest) => match rest.iter().position(|b| *b == b']') {
            Some(end) => {
                let literal = &rest[..end];
                if literal.is_empty()
                    || !literal
                        .iter()
                        .all(|b| b.is_ascii_hexdigit() || b":.".contains(b))
                {
                    return false;
                }
                match &rest[end + 1..] {
                    [] => (&b""[..], None),
                    [b':', port @ ..] => (&b"x"[..], Some(port)),
                    _ => return false,
                }
            }
            None => return false,
        },
        None => match value.iter().rposition(|b| *b == b':') {
            Some(c) => (&value[..c], Some(&value[c + 1..])),
            None => (value, None),
        },
    };
    let host_ok = host
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(b));
    let port_ok = port.is_none_or(|p| p.iter().all(u8::is_ascii_digit));
    host_ok && port_ok
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
            if this.state == State::Refused {
                // The parser answers the refusal and closes; it is never woken for more.
                return Poll::Pending;
            }
            if this.state == State::Passthrough && this.pending.is_empty() {
                return Pin::new(&mut this.inner).poll_read(cx, out);
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            // Never zeroed: the reader only ever sees what was read into it.
            let scratch = this
                .scratch
                .get_or_insert_with(|| Box::new_uninit_slice(READ_CHUNK));
            let mut rb = ReadBuf::uninit(scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                Poll::Pending => {
                    if this.pending.is_empty() && this.ready.is_empty() {
                        this.scratch = None;
                        this.pending = BytesMut::new();
                        this.ready = BytesMut::new();
                    }
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

    fn rules() -> std::sync::Arc<Rules> {
        std::sync::Arc::new(Rules {
            head_max: 1024,
            line_max: 256,
            upgrades: vec!["websocket".into()],
            marker: "m4rk".into(),
        })
    }

    fn refused(out: &[u8]) -> Option<Refusal> {
        let text = std::str::from_utf8(out).ok()?;
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("pier-refused: m4rk "))?;
        Refusal::from_code(line)
    }

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
        let mut g = Guarded::new(b, std::time::Duration::from_secs(5), rules());
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
    async fn refused_heads_are_replaced_even_after_honest_ones() {
        let long_line = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX-A: {}\r\n\r\n",
            "a".repeat(300)
        );
        let long_target = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(300));
        let mut large = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
        for i in 0..40 {
            large.push_str(&format!("X-{i}: {}\r\n", "v".repeat(40)));
        }
        large.push_str("\r\n");
        let cases: Vec<(&[u8], Refusal)> = vec![
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", Refusal::Framing),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n", Refusal::Framing),
            (b"GET / HTTP/1.1\nHost: x\n\n", Refusal::Framing),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", Refusal::Framing),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +2\r\n\r\n", Refusal::Framing),
            (b"GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", Refusal::MissingHost),
            (b"GET / HTTP/1.1\r\nHost: x\r\nhost: y\r\n\r\n", Refusal::TwoHosts),
            (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", Refusal::BadHost),
            (b"GET / HTTP/1.1\r\nHost: u@x\r\n\r\n", Refusal::BadHost),
            (long_line.as_bytes(), Refusal::LongHeaderLine),
            (long_target.as_bytes(), Refusal::LongRequestLine),
            (large.as_bytes(), Refusal::LargeHead),
            // Unfinished, already too long: refused without waiting for the end.
            (&long_line.as_bytes()[..320], Refusal::LongHeaderLine),
        ];
        for (case, why) in cases {
            let mut traffic =
                b"POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\nGET /not-a-head\r\n"
                    .to_vec();
            let honest = traffic.len();
            traffic.extend_from_slice(case);
            traffic.extend_from_slice(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
            let out = through(&traffic, 5).await;
            assert_eq!(&out[..honest], &traffic[..honest]);
            assert_eq!(
                refused(&out[honest..]),
                Some(why),
                "{}",
                String::from_utf8_lossy(case)
            );
            assert!(
                !String::from_utf8_lossy(&out).contains("/after"),
                "nothing after a refusal"
            );
        }
    }

    #[tokio::test]
    async fn http_1_0_needs_no_host_and_h2c_is_framed_as_usual() {
        let old = b"GET / HTTP/1.0\r\n\r\n";
        assert_eq!(through(old, 3).await, old.to_vec());
        // A refused upgrade does not stop the guard from looking at what follows.
        let traffic = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n";
        assert_eq!(refused(&through(traffic, 7).await), Some(Refusal::TwoHosts));
        let ws = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
        assert!(matches!(judge(ws, &rules()), Verdict::Passthrough));
    }

    #[test]
    fn hosts_follow_rfc_9110() {
        for ok in [
            "x",
            "example.com:8080",
            "[::1]:80",
            "[::1]",
            "127.0.0.1",
            "",
        ] {
            assert!(valid_host(ok.as_bytes()), "{ok}");
        }
        for bad in ["a b", "u@x", "x:80a", "[::1", "[zz]", "x/y", "x\"y"] {
            assert!(!valid_host(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn heads_end_at_the_empty_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\nrest"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }
}
