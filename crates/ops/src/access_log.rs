//! The request log: one line per HTTP request, cheap enough to leave on under full load.
//!
//! A general-purpose event pipeline (tracing's formatter) costs a few microseconds per line,
//! which is a third of the whole budget of a small request. Request lines have a fixed shape, so
//! they are formatted by hand into a shared buffer (one short lock, no allocation on the hot
//! path) that a background thread hands to the log sinks in large chunks, at least every 100 ms.
//!
//! Like a tracing subscriber, the log is installed once per process by the binary; until then
//! [`record`] does nothing.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `2026-01-02T03:04:05.678901Z  INFO pier::http: request request_id=… method=GET …`
    Text,
    /// One JSON object per line, the same fields as tracing's JSON lines.
    Json,
}

/// One finished request.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    pub route: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub duration_us: u64,
    pub bytes: u64,
}

/// A buffer beyond which lines are dropped (and counted) rather than grow memory without bound.
const MAX_PENDING: usize = 16 * 1024 * 1024;
/// The writer is woken early once this much is pending.
const WAKE_AT: usize = 64 * 1024;
const FLUSH_EVERY: Duration = Duration::from_millis(100);

struct Shared {
    /// The distinct formats the sinks want (one or two); `pending[i]` holds lines in `formats[i]`.
    formats: Vec<Format>,
    pending: Mutex<[Vec<u8>; 2]>,
    wake: Condvar,
    stop: AtomicBool,
    dropped: AtomicU64,
}

static LOG: OnceLock<Arc<Shared>> = OnceLock::new();

/// Flushes and stops the writer when dropped.
pub struct Guard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A destination and the format it wants.
pub type Sink = (Format, Box<dyn Write + Send>);

/// Installs the process-wide request log writing to `sinks`. A second call returns `None`.
pub fn install(sinks: Vec<Sink>) -> Option<Guard> {
    let mut formats: Vec<Format> = Vec::new();
    for (f, _) in &sinks {
        if !formats.contains(f) {
            formats.push(*f);
        }
    }
    let shared = Arc::new(Shared {
        formats,
        pending: Mutex::new([Vec::with_capacity(WAKE_AT * 2), Vec::new()]),
        wake: Condvar::new(),
        stop: AtomicBool::new(false),
        dropped: AtomicU64::new(0),
    });
    LOG.set(shared.clone()).ok()?;
    let writer = shared.clone();
    let thread = std::thread::Builder::new()
        .name("pier-request-log".into())
        .spawn(move || write_loop(&writer, sinks))
        .ok()?;
    Some(Guard {
        shared,
        thread: Some(thread),
    })
}

/// True once a request log is installed.
pub fn enabled() -> bool {
    LOG.get().is_some()
}

/// Lines dropped because the sinks could not keep up.
pub fn dropped() -> u64 {
    LOG.get().map_or(0, |s| s.dropped.load(Ordering::Relaxed))
}

/// Appends one line. Costs a clock read, a few hundred bytes of formatting and a short lock.
pub fn record(entry: &Entry<'_>) {
    let Some(shared) = LOG.get() else { return };
    let now = SystemTime::now();
    let mut lines = [[0u8; 512]; 2];
    let mut lens = [0usize; 2];
    for (i, format) in shared.formats.iter().enumerate().take(2) {
        let mut w = Cursor {
            buf: &mut lines[i],
            len: 0,
        };
        format_line(&mut w, *format, entry, now);
        lens[i] = w.len;
    }
    let (wake, full) = {
        let Ok(mut pending) = shared.pending.lock() else {
            return;
        };
        if pending[0].len() + lens[0] > MAX_PENDING {
            (false, true)
        } else {
            for i in 0..shared.formats.len().min(2) {
                pending[i].extend_from_slice(&lines[i][..lens[i]]);
            }
            (pending[0].len() >= WAKE_AT, false)
        }
    };
    if full {
        shared.dropped.fetch_add(1, Ordering::Relaxed);
    } else if wake {
        shared.wake.notify_one();
    }
}

fn write_loop(shared: &Shared, mut sinks: Vec<Sink>) {
    let mut out = [Vec::with_capacity(WAKE_AT * 2), Vec::new()];
    loop {
        let stopping = {
            let Ok(mut pending) = shared.pending.lock() else {
                return;
            };
            if pending[0].is_empty() && !shared.stop.load(Ordering::Acquire) {
                pending = match shared.wake.wait_timeout(pending, FLUSH_EVERY) {
                    Ok((p, _)) => p,
                    Err(_) => return,
                };
            }
            std::mem::swap(&mut *pending, &mut out);
            shared.stop.load(Ordering::Acquire)
        };
        for (format, sink) in &mut sinks {
            let i = shared.formats.iter().position(|f| f == format).unwrap_or(0);
            if !out[i].is_empty() {
                let _ = sink.write_all(&out[i]);
                let _ = sink.flush();
            }
        }
        for o in &mut out {
            o.clear();
        }
        if stopping && shared.pending.lock().map_or(true, |p| p[0].is_empty()) {
            return;
        }
    }
}

/// A fixed buffer that silently truncates; a line that would not fit keeps its newline.
struct Cursor<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Cursor<'_> {
    fn put(&mut self, bytes: &[u8]) {
        // Keep one byte for the final newline.
        let room = self.buf.len() - 1 - self.len;
        let n = bytes.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
    }

    fn num(&mut self, mut v: u64) {
        let mut tmp = [0u8; 20];
        let mut i = tmp.len();
        loop {
            i -= 1;
            tmp[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.put(&tmp[i..]);
    }

    fn padded(&mut self, v: u64, width: usize) {
        let mut tmp = [b'0'; 20];
        let mut i = tmp.len();
        let mut v = v;
        while i > tmp.len() - width || v > 0 {
            i -= 1;
            tmp[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        self.put(&tmp[i..]);
    }

    /// Writes `s` as the inside of a JSON string.
    fn json_str(&mut self, s: &str) {
        for &b in s.as_bytes() {
            match b {
                b'"' => self.put(b"\\\""),
                b'\\' => self.put(b"\\\\"),
                0..=0x1f => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    self.put(&[
                        b'\\',
                        b'u',
                        b'0',
                        b'0',
                        HEX[(b >> 4) as usize],
                        HEX[(b & 0xf) as usize],
                    ]);
                }
                _ => self.put(&[b]),
            }
        }
    }

    /// Writes `s` for a text line: control characters and spaces escaped so a line stays one line.
    fn text_str(&mut self, s: &str) {
        for &b in s.as_bytes() {
            if b.is_ascii_control() || b == b' ' {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                self.put(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]]);
            } else {
                self.put(&[b]);
            }
        }
    }

    fn finish(&mut self) {
        self.buf[self.len] = b'\n';
        self.len += 1;
    }
}

/// RFC 3339 UTC with microseconds, e.g. `2026-11-25T20:31:22.123456Z`.
fn timestamp(w: &mut Cursor<'_>, now: SystemTime) {
    let d = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (y, m, day) = pier_core::time::civil_from_days(i64::try_from(secs / 86_400).unwrap_or(0));
    let rem = secs % 86_400;
    w.padded(u64::try_from(y).unwrap_or(0), 4);
    w.put(b"-");
    w.padded(u64::from(m), 2);
    w.put(b"-");
    w.padded(u64::from(day), 2);
    w.put(b"T");
    w.padded(rem / 3600, 2);
    w.put(b":");
    w.padded(rem % 3600 / 60, 2);
    w.put(b":");
    w.padded(rem % 60, 2);
    w.put(b".");
    w.padded(u64::from(d.subsec_micros()), 6);
    w.put(b"Z");
}

fn format_line(w: &mut Cursor<'_>, format: Format, e: &Entry<'_>, now: SystemTime) {
    match format {
        Format::Json => {
            w.put(b"{\"timestamp\":\"");
            timestamp(w, now);
            w.put(b"\",\"level\":\"INFO\",\"message\":\"request\",\"request_id\":\"");
            w.json_str(e.request_id);
            w.put(b"\",\"method\":\"");
            w.json_str(e.method);
            w.put(b"\",\"route\":\"");
            w.json_str(e.route);
            w.put(b"\",\"path\":\"");
            w.json_str(e.path);
            w.put(b"\",\"status\":");
            w.num(u64::from(e.status));
            w.put(b",\"duration_us\":");
            w.num(e.duration_us);
            w.put(b",\"bytes\":");
            w.num(e.bytes);
            w.put(b",\"target\":\"pier::http\"}");
            if w.len >= w.buf.len() - 1 {
                // Truncated: a JSON consumer is better served by a short valid line.
                w.len = 0;
                w.put(b"{\"level\":\"WARN\",\"message\":\"request line too long\",\"target\":\"pier::http\"}");
            }
        }
        Format::Text => {
            timestamp(w, now);
            w.put(b"  INFO pier::http: request request_id=");
            w.text_str(e.request_id);
            w.put(b" method=");
            w.text_str(e.method);
            w.put(b" route=");
            w.text_str(e.route);
            w.put(b" path=");
            w.text_str(e.path);
            w.put(b" status=");
            w.num(u64::from(e.status));
            w.put(b" duration_us=");
            w.num(e.duration_us);
            w.put(b" bytes=");
            w.num(e.bytes);
        }
    }
    w.finish();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(format: Format, e: &Entry<'_>, secs: u64) -> String {
        let mut buf = [0u8; 512];
        let mut w = Cursor {
            buf: &mut buf,
            len: 0,
        };
        format_line(
            &mut w,
            format,
            e,
            UNIX_EPOCH + Duration::from_micros(secs * 1_000_000 + 42),
        );
        let n = w.len;
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    fn entry(path: &str) -> Entry<'_> {
        Entry {
            request_id: "abc",
            method: "GET",
            route: "/api/health",
            path,
            status: 200,
            duration_us: 1234,
            bytes: 50,
        }
    }

    #[test]
    fn timestamps_are_rfc3339() {
        let l = line(Format::Text, &entry("/x"), 1_795_638_682);
        assert!(
            l.starts_with("2026-11-25T20:31:22.000042Z  INFO pier::http: request"),
            "{l}"
        );
        let l = line(Format::Text, &entry("/x"), 951_782_400); // 2000-02-29
        assert!(l.starts_with("2000-02-29T00:00:00.000042Z"), "{l}");
    }

    #[test]
    fn json_lines_parse_and_escape() {
        let l = line(Format::Json, &entry("/a\"b\\c\n"), 0);
        assert!(l.ends_with("}\n"));
        assert!(l.contains(r#""path":"/a\"b\\c\u000a""#), "{l}");
        assert!(
            l.contains(r#""status":200,"duration_us":1234,"bytes":50"#),
            "{l}"
        );
        assert!(
            l.starts_with(r#"{"timestamp":"1970-01-01T00:00:00.000042Z","#),
            "{l}"
        );
    }

    #[test]
    fn text_lines_stay_one_line() {
        let l = line(Format::Text, &entry("/a b\nc"), 0);
        assert_eq!(l.matches('\n').count(), 1);
        assert!(l.contains("path=/a%20b%0Ac status=200"), "{l}");
    }

    #[test]
    fn overlong_lines_are_cut_without_losing_the_newline() {
        let long = "x".repeat(2000);
        let t = line(Format::Text, &entry(&long), 0);
        assert_eq!(t.len(), 512);
        assert!(t.ends_with('\n'));
        let j = line(Format::Json, &entry(&long), 0);
        assert!(
            j.contains("request line too long") && j.ends_with("}\n"),
            "{j}"
        );
    }
}
