//! The boot listener's HTTP/1.1 engine. hyper writes every body through user space; a 64 MiB
//! kernel then costs pxed 7× nginx's CPU (issue 11). This engine frames requests and
//! responses itself (httparse reads the heads), lets the axum router decide every response,
//! and sends a static file's bytes with `sendfile(2)` straight from the page cache when the
//! response carries a [`SendFile`].
//!
//! It serves what a boot client asks: GET and HEAD, keep-alive and pipelining, HTTP/1.0 and
//! 1.1. A request with a body is answered (the router refuses it) and the connection closed
//! without reading the body. The admin API, which takes bodies, stays on hyper.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version};
use axum::response::Response;
use axum::Router;
use bytes::{Buf, BytesMut};
use http_body::Body as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tower::ServiceExt;
use tracing::debug;

use super::{Activity, LocalAddr};

/// The longest request head read: a boot client's is a few hundred bytes.
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// Header lines in one request head.
const MAX_HEADERS: usize = 64;
/// Bodies up to this size are written with their head in one send.
const SMALL_BODY: usize = 64 * 1024;
/// One `sendfile` call moves at most this much, so a fast client cannot hold a worker.
const SENDFILE_CHUNK: usize = 1 << 20;

/// A response whose body is `len` bytes of `file` from `offset`, for the engine to send with
/// `sendfile`. The router attaches it next to an ordinary body, which other engines use.
#[derive(Debug, Clone)]
pub(crate) struct SendFile {
    /// The open file, the one whose length the response headers were computed from.
    pub file: Arc<std::fs::File>,
    /// Where the body starts in the file.
    pub offset: u64,
    /// Body length, equal to the response's Content-Length.
    pub len: u64,
}

/// A parsed request head.
#[derive(Debug)]
pub(crate) struct Head {
    /// The request, with an empty body.
    pub req: Request,
    /// Whether the client wants the connection kept after the response.
    pub keep_alive: bool,
    /// Whether a body follows the head (never read: the connection closes after the reply).
    pub has_body: bool,
}

/// Why a head could not be parsed; each is answered and ends the connection.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HeadError {
    /// More than [`MAX_HEAD`] bytes or [`MAX_HEADERS`] lines.
    #[error("request head too large")]
    TooLarge,
    /// Not HTTP/1.x, or a method, target or header that does not parse.
    #[error("malformed request head")]
    Malformed,
}

impl HeadError {
    fn status(&self) -> StatusCode {
        match self {
            HeadError::TooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            HeadError::Malformed => StatusCode::BAD_REQUEST,
        }
    }
}

/// Parses one request head from the start of `buf`: `Ok(None)` until it is complete, then
/// the head and how many bytes it took.
pub(crate) fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, HeadError> {
    let mut lines = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut lines);
    let used = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) => return Err(HeadError::Malformed),
    };
    if used > MAX_HEAD {
        return Err(HeadError::TooLarge);
    }
    let method = parsed.method.ok_or(HeadError::Malformed)?;
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| HeadError::Malformed)?;
    let uri: Uri = parsed
        .path
        .ok_or(HeadError::Malformed)?
        .parse()
        .map_err(|_| HeadError::Malformed)?;
    let version = match parsed.version {
        Some(0) => Version::HTTP_10,
        Some(1) => Version::HTTP_11,
        _ => return Err(HeadError::Malformed),
    };
    let mut headers = HeaderMap::with_capacity(parsed.headers.len());
    for h in parsed.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| HeadError::Malformed)?;
        let value = HeaderValue::from_bytes(h.value).map_err(|_| HeadError::Malformed)?;
        headers.append(name, value);
    }
    // One Content-Length of digits only (RFC 9112 §6.3): two, or "+5", would let a proxy in
    // front and pxed disagree on where the next request starts.
    let mut lengths = headers.get_all(header::CONTENT_LENGTH).iter();
    let length = match (lengths.next(), lengths.next()) {
        (None, _) => 0,
        (Some(v), None) => {
            let v = v.as_bytes();
            if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
                return Err(HeadError::Malformed);
            }
            std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or(HeadError::Malformed)?
        }
        (Some(_), Some(_)) => return Err(HeadError::Malformed),
    };
    let has_body = headers.contains_key(header::TRANSFER_ENCODING) || length > 0;
    let keep_alive = keep_alive(version, &headers);
    let mut req = Request::new(Body::empty());
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.version_mut() = version;
    *req.headers_mut() = headers;
    Ok(Some((
        Head {
            req,
            keep_alive,
            has_body,
        },
        used,
    )))
}

/// HTTP/1.1 keeps the connection unless told `close`; HTTP/1.0 closes it unless told
/// `keep-alive`.
fn keep_alive(version: Version, headers: &HeaderMap) -> bool {
    let said = |token: &str| {
        headers.get_all(header::CONNECTION).iter().any(|v| {
            v.to_str()
                .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
                .unwrap_or(false)
        })
    };
    if version == Version::HTTP_10 {
        said("keep-alive")
    } else {
        !said("close")
    }
}

/// The status line and headers of a response. `len` is the body's length, written as
/// Content-Length unless the router set one.
pub(crate) fn render_head(
    status: StatusCode,
    headers: &HeaderMap,
    len: u64,
    keep_alive: bool,
) -> Vec<u8> {
    let mut out = String::with_capacity(256);
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    for (name, value) in headers {
        if name == header::CONNECTION || name == header::TRANSFER_ENCODING {
            continue;
        }
        // Header values are visible ASCII or obs-text; anything else was refused upstream,
        // and lossy rendering cannot add a line break.
        let _ = write!(
            out,
            "{}: {}\r\n",
            name,
            String::from_utf8_lossy(value.as_bytes())
        );
    }
    // 1xx, 204 and 304 have no body, and a length on them would have to be the 200's.
    let bodiless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    if !bodiless && !headers.contains_key(header::CONTENT_LENGTH) {
        let _ = write!(out, "content-length: {len}\r\n");
    }
    if !headers.contains_key(header::DATE) {
        let _ = write!(
            out,
            "date: {}\r\n",
            httpdate::fmt_http_date(std::time::SystemTime::now())
        );
    }
    out.push_str(if keep_alive {
        "connection: keep-alive\r\n\r\n"
    } else {
        "connection: close\r\n\r\n"
    });
    out.into_bytes()
}

/// Serves requests on one connection until the client closes it, a response asks to close,
/// or an error; the caller's watchdog owns every deadline.
pub(super) async fn serve(
    mut stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    router: Router,
    activity: Arc<Activity>,
) {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        let head = match read_head(&mut stream, &mut buf, &activity).await {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err(Failure::Head(e)) => {
                debug!(%peer, error = %e, "http request head refused");
                let body = format!("pxed: {e}\n");
                let mut headers = HeaderMap::new();
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                let mut out = render_head(e.status(), &headers, body.len() as u64, false);
                out.extend_from_slice(body.as_bytes());
                let _ = stream.write_all(&out).await;
                close(stream).await;
                return;
            }
            Err(Failure::Io(e)) => {
                debug!(%peer, error = %e, "http connection read failed");
                return;
            }
        };
        let Some(guard) = activity.begin() else {
            debug!(%peer, "http request on an evicted connection left unanswered");
            return;
        };
        let keep = head.keep_alive && !head.has_body;
        let head_only = head.req.method() == Method::HEAD;
        let mut req = head.req;
        req.extensions_mut().insert(ConnectInfo(peer));
        req.extensions_mut().insert(LocalAddr(local));
        let resp: Response = router
            .clone()
            .oneshot(req)
            .await
            .unwrap_or_else(|e| match e {});
        let written = respond(&mut stream, resp, head_only, keep, &activity).await;
        drop(guard);
        match written {
            Ok(true) => continue,
            Ok(false) => {
                close(stream).await;
                return;
            }
            Err(e) => {
                debug!(%peer, error = %e, "http response not sent");
                return;
            }
        }
    }
}

/// Why a connection stops before a request reaches the router.
enum Failure {
    /// A head that is answered with an error.
    Head(HeadError),
    /// The socket failed, or closed in the middle of a head.
    Io(std::io::Error),
}

/// Reads until `buf` starts with a whole head; `Ok(None)` when the client closed the
/// connection between requests.
async fn read_head(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    activity: &Activity,
) -> Result<Option<Head>, Failure> {
    // Bytes already known to hold no end of head: a head trickled a byte at a time is
    // parsed once it is whole, not once per byte.
    let mut scanned = 0usize;
    loop {
        if ends_head(&buf[scanned.saturating_sub(2)..]) {
            if let Some((head, used)) = parse_head(buf).map_err(Failure::Head)? {
                buf.advance(used);
                return Ok(Some(head));
            }
        }
        scanned = buf.len();
        if buf.len() >= MAX_HEAD {
            return Err(Failure::Head(HeadError::TooLarge));
        }
        buf.reserve(4096);
        let n = stream.read_buf(buf).await.map_err(Failure::Io)?;
        if n == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(Failure::Io(std::io::ErrorKind::UnexpectedEof.into()))
            };
        }
        activity.touch();
    }
}

/// Whether `bytes` hold the blank line that ends a request head (httparse also takes bare
/// LF line ends).
fn ends_head(bytes: &[u8]) -> bool {
    bytes.windows(2).any(|w| w == b"\n\n") || bytes.windows(3).any(|w| w == b"\n\r\n")
}

/// Writes one response; `Ok(true)` when the connection may take another request.
async fn respond(
    stream: &mut TcpStream,
    resp: Response,
    head_only: bool,
    keep: bool,
    activity: &Activity,
) -> std::io::Result<bool> {
    let (parts, body) = resp.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if head_only {
        let len = declared.or(body.size_hint().exact()).unwrap_or(0);
        write(
            stream,
            &render_head(parts.status, &parts.headers, len, keep),
            activity,
        )
        .await?;
        return Ok(keep);
    }
    if let Some(file) = parts.extensions.get::<SendFile>() {
        if declared == Some(file.len) {
            drop(body);
            write(
                stream,
                &render_head(parts.status, &parts.headers, file.len, keep),
                activity,
            )
            .await?;
            send_file(stream, file, activity).await?;
            return Ok(keep);
        }
    }
    match declared.or(body.size_hint().exact()) {
        Some(len) if len <= SMALL_BODY as u64 => {
            let bytes = axum::body::to_bytes(body, SMALL_BODY)
                .await
                .map_err(std::io::Error::other)?;
            if bytes.len() as u64 != len {
                return Err(std::io::Error::other("body length differs from its header"));
            }
            let mut out = render_head(parts.status, &parts.headers, len, keep);
            out.extend_from_slice(&bytes);
            write(stream, &out, activity).await?;
            Ok(keep)
        }
        Some(len) => {
            let head = render_head(parts.status, &parts.headers, len, keep);
            write(stream, &head, activity).await?;
            stream_body(stream, body, len, activity).await?;
            Ok(keep)
        }
        // Every response pxed's router makes has a known length; anything else is bounded
        // and sent with the length it turned out to have.
        None => {
            let bytes: Bytes = axum::body::to_bytes(body, SMALL_BODY)
                .await
                .map_err(std::io::Error::other)?;
            let mut out = render_head(parts.status, &parts.headers, bytes.len() as u64, keep);
            out.extend_from_slice(&bytes);
            write(stream, &out, activity).await?;
            Ok(keep)
        }
    }
}

/// Streams a body of a declared `len` frame by frame; a body that turns out longer or
/// shorter is an error, which closes the connection rather than desynchronise it.
async fn stream_body(
    stream: &mut TcpStream,
    mut body: axum::body::Body,
    len: u64,
    activity: &Activity,
) -> std::io::Result<()> {
    let mut sent = 0u64;
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        let frame = frame.map_err(std::io::Error::other)?;
        if let Ok(data) = frame.into_data() {
            sent += data.len() as u64;
            if sent > len {
                return Err(std::io::Error::other("body longer than its header"));
            }
            write(stream, &data, activity).await?;
        }
    }
    if sent != len {
        return Err(std::io::Error::other("body shorter than its header"));
    }
    Ok(())
}

async fn write(stream: &mut TcpStream, bytes: &[u8], activity: &Activity) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    activity.touch();
    Ok(())
}

/// Sends `file`'s range with `sendfile(2)`: the bytes go from the page cache to the socket
/// without a copy through pxed. A file that shrank under it ends the connection.
async fn send_file(
    stream: &mut TcpStream,
    file: &SendFile,
    activity: &Activity,
) -> std::io::Result<()> {
    let mut offset = file.offset;
    let end = file.offset + file.len;
    while offset < end {
        let want = (end - offset).min(SENDFILE_CHUNK as u64) as usize;
        let sent = stream.try_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(stream.as_fd(), file.file.as_fd(), Some(&mut offset), want)
                .map_err(std::io::Error::from)
        });
        match sent {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {
                activity.touch();
                // Give other connections on this worker a turn between chunks.
                tokio::task::coop::consume_budget().await;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => stream.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Ends a connection the polite way: FIN first, then a short, bounded drain of what the
/// client still sends (an unread request body), so that closing does not reset the
/// response away before the client has read it.
async fn close(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 4096];
    let drain = async {
        let mut left = 64 * 1024usize;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

#[cfg(test)]
mod tests;
