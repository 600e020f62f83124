//! Text logs that request data cannot forge. HTTP paths, TFTP file names and TFTP ERROR
//! messages come from anyone on the boot network, and tracing's text format writes `%` fields
//! and messages as they are: a newline in a file name would start a fake log line, and an
//! escape sequence would rewrite the operator's terminal. Rather than remember to escape every
//! field at every call site, the writer escapes every control character of each record.
//!
//! tracing-subscriber's fmt layer formats one event into a buffer and hands it over with one
//! `write_all` (`fmt_layer.rs`, `on_event`), so the only newline a record should have is its
//! last byte. [`EscapingWriter`] keeps exactly that one and escapes any other, so a writer
//! that is handed a record in pieces still never lets a newline through mid-record.
//!
//! JSON logs need none of this: serde_json already escapes control characters in strings.

use std::io::{self, Write};
use std::sync::OnceLock;

/// Log lines queued for the writer thread before new ones are dropped: a few seconds of a
/// storm's per-packet lines, a few MiB at most.
pub const QUEUED_LINES: usize = 32 * 1024;

/// The writer thread's count of dropped lines, once logging is set up.
static DROPPED: OnceLock<tracing_appender::non_blocking::ErrorCounter> = OnceLock::new();

/// Makes `counter` (the binary's non-blocking writer) the source of the dropped-lines metric.
pub fn count_dropped(counter: tracing_appender::non_blocking::ErrorCounter) {
    let _ = DROPPED.set(counter);
}

/// Log lines dropped because the writer fell behind, for `/metrics`.
pub(crate) fn dropped_lines() -> u64 {
    DROPPED.get().map_or(0, |c| c.dropped_lines() as u64)
}

use tracing_subscriber::fmt::MakeWriter;

/// A [`MakeWriter`] whose writers escape control characters (see [`EscapingWriter`]);
/// wraps the real destination, e.g. `EscapeControls::new(std::io::stderr)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct EscapeControls<M> {
    /// Makes the writer that receives the escaped records.
    inner: M,
}

impl<M> EscapeControls<M> {
    /// Escapes everything written through `inner`'s writers.
    pub fn new(inner: M) -> Self {
        EscapeControls { inner }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for EscapeControls<M> {
    type Writer = EscapingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        EscapingWriter {
            inner: self.inner.make_writer(),
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        EscapingWriter {
            inner: self.inner.make_writer_for(meta),
        }
    }
}

/// Writes each buffer with every control character escaped except a final `\n`: `\n`, `\r`
/// and `\t` as those two-character escapes, other C0 controls and DEL as `\xNN`, C1 controls
/// and the Unicode line and paragraph separators as `\u{NN}`, and bytes that are not UTF-8 as
/// `\xNN`. Each buffer goes out in one `write_all`, so concurrent records do not interleave
/// any more than they did without escaping.
#[derive(Debug)]
pub struct EscapingWriter<W> {
    /// The destination of the escaped bytes.
    inner: W,
}

impl<W: Write> Write for EscapingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if needs_escaping(buf) {
            self.inner.write_all(&escape_record(buf))?;
        } else {
            self.inner.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Whether `buf` has anything [`escape_record`] would change: a byte below 0x20 other than a
/// final `\n`, DEL, or the lead bytes of the escaped non-ASCII characters (0xC2 starts
/// U+0080..U+00BF, 0xE2 starts U+2028 and U+2029) or any byte that is not UTF-8. The common
/// record, printable ASCII, is written without a copy.
fn needs_escaping(buf: &[u8]) -> bool {
    let body = buf.strip_suffix(b"\n").unwrap_or(buf);
    body.iter()
        .any(|&b| b < 0x20 || b == 0x7f || b == 0xc2 || b == 0xe2)
        || std::str::from_utf8(body).is_err()
}

/// `buf` with its control characters escaped, its final `\n` (if any) kept.
pub(crate) fn escape_record(buf: &[u8]) -> Vec<u8> {
    let (body, end): (&[u8], &[u8]) = match buf.strip_suffix(b"\n") {
        Some(body) => (body, b"\n"),
        None => (buf, b""),
    };
    let mut out = Vec::with_capacity(buf.len() + 16);
    for chunk in body.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_escaped(&mut out, c);
        }
        for b in chunk.invalid() {
            out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
        }
    }
    out.extend_from_slice(end);
    out
}

fn push_escaped(out: &mut Vec<u8>, c: char) {
    match c {
        '\n' => out.extend_from_slice(b"\\n"),
        '\r' => out.extend_from_slice(b"\\r"),
        '\t' => out.extend_from_slice(b"\\t"),
        c if (c as u32) < 0x20 || c == '\x7f' => {
            out.extend_from_slice(format!("\\x{:02x}", c as u32).as_bytes())
        }
        // C1 controls; U+2028 and U+2029 end a line in some log viewers.
        c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
            out.extend_from_slice(format!("\\u{{{:x}}}", c as u32).as_bytes())
        }
        c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn escaped(s: &[u8]) -> String {
        String::from_utf8(escape_record(s)).unwrap()
    }

    #[test]
    fn every_control_character_is_escaped_but_the_final_newline() {
        assert_eq!(escaped(b"plain line\n"), "plain line\n");
        assert_eq!(escaped(b"a\nb\n"), "a\\nb\n");
        assert_eq!(escaped(b"a\n\n"), "a\\n\n");
        assert_eq!(escaped(b"no end\n mid"), "no end\\n mid");
        assert_eq!(
            escaped(b"\r\t\x1b[31m\x07\x7f\0"),
            "\\r\\t\\x1b[31m\\x07\\x7f\\x00"
        );
        assert_eq!(
            escaped("c1 \u{85} \u{9b} sep \u{2028}\u{2029} é ✓".as_bytes()),
            "c1 \\u{85} \\u{9b} sep \\u{2028}\\u{2029} é ✓"
        );
        assert_eq!(escaped(b"bad \xff\xfe utf8\n"), "bad \\xff\\xfe utf8\n");
    }

    /// `needs_escaping` may say yes to a record that comes out unchanged (`✓` starts with
    /// 0xE2), never no to one that would change.
    #[test]
    fn the_fast_path_skips_only_records_that_need_no_escaping() {
        let cases: [&[u8]; 8] = [
            b"ok\n",
            b"ok",
            b"a\nb",
            b"\x1b",
            "é".as_bytes(),
            "\u{2028}".as_bytes(),
            "✓".as_bytes(),
            b"\xff",
        ];
        for c in cases {
            if escape_record(c) != c {
                assert!(needs_escaping(c), "{c:?}");
            }
        }
    }

    /// A shared in-memory log destination.
    #[derive(Clone, Default)]
    struct Memory(Arc<Mutex<Vec<u8>>>);

    impl Write for Memory {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn log_one_event<M>(make: M)
    where
        M: for<'a> MakeWriter<'a> + Send + Sync + 'static,
    {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(make)
            .with_ansi(false)
            .without_time()
            .finish();
        let path = "a\nfake line";
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(path = %path, file = ?path, "request refused {}", path);
        });
    }

    #[test]
    fn a_newline_in_a_field_cannot_start_a_log_line() {
        let raw = Memory::default();
        let sink = raw.clone();
        log_one_event(move || sink.clone());
        let raw = String::from_utf8(raw.0.lock().unwrap().clone()).unwrap();
        assert_eq!(raw.lines().count(), 3, "without escaping: {raw:?}");

        let mem = Memory::default();
        let sink = mem.clone();
        log_one_event(EscapeControls::new(move || sink.clone()));
        let text = String::from_utf8(mem.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text:?}");
        assert!(text.ends_with('\n') && !text[..text.len() - 1].contains('\n'));
        assert!(
            text.contains("request refused a\\nfake line path=a\\nfake line"),
            "{text}"
        );
    }
}
