//! HTTP byte ranges (`Range: bytes=…`), shared by the gateway's static files and the API's
//! uploaded files.

/// What a `Range` header asks of a body of known length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// The whole body (no usable single range: several ranges, another unit).
    Full,
    /// Bytes `start..=end`.
    Part(u64, u64),
    /// 416: the range lies outside the body or does not parse.
    Unsatisfiable,
}

/// One `bytes=` range of a body of `len` bytes; several ranges, or a unit other than bytes,
/// get the whole body.
pub fn parse_byte_range(v: &str, len: u64) -> ByteRange {
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return ByteRange::Full;
    };
    if spec.contains(',') {
        return ByteRange::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return ByteRange::Unsatisfiable;
    };
    let (a, b) = (a.trim(), b.trim());
    let parse = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    if a.is_empty() {
        // Suffix: the last n bytes.
        return match parse(b) {
            Some(0) | None => ByteRange::Unsatisfiable,
            Some(_) if len == 0 => ByteRange::Unsatisfiable,
            Some(n) => ByteRange::Part(len.saturating_sub(n), len - 1),
        };
    }
    let Some(start) = parse(a) else {
        return ByteRange::Unsatisfiable;
    };
    if start >= len {
        return ByteRange::Unsatisfiable;
    }
    let end = if b.is_empty() {
        len - 1
    } else {
        match parse(b) {
            Some(e) if e >= start => e.min(len - 1),
            _ => return ByteRange::Unsatisfiable,
        }
    };
    ByteRange::Part(start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let p = |h| parse_byte_range(h, 5);
        assert_eq!(p("bytes=1-2"), ByteRange::Part(1, 2));
        assert_eq!(p("bytes=3-"), ByteRange::Part(3, 4));
        assert_eq!(p("bytes=-2"), ByteRange::Part(3, 4));
        assert_eq!(p("bytes=-9"), ByteRange::Part(0, 4));
        assert_eq!(p("bytes=1-99"), ByteRange::Part(1, 4));
        assert_eq!(p("bytes=5-"), ByteRange::Unsatisfiable);
        assert_eq!(p("bytes=2-1"), ByteRange::Unsatisfiable);
        assert_eq!(p("bytes=0-1,3-4"), ByteRange::Full);
        assert_eq!(p("items=0-1"), ByteRange::Full);
        assert_eq!(parse_byte_range("bytes=-1", 0), ByteRange::Unsatisfiable);
    }
}
