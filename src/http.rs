//! The boot HTTP listener: per-MAC iPXE scripts at `/ipxe/{mac}` and read-only static files
//! from `boot_dir` (Range and ETag by tower-http; the bytes by `sendfile`, see
//! [`crate::conn::SendFile`]). Which profile a machine gets is
//! [`crate::plan`]'s decision. Every request is logged with the client's MAC where pxed
//! knows it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower::ServiceExt;
use tower_http::services::ServeFile;
use tracing::{info, warn};

use crate::bootfs::{resolve_in, PathError};
use crate::events::EventKind;
use crate::mac::Mac;
use crate::plan::{self, Denied, Loader};
use crate::profiles::{self, Profile};
use crate::state::Shared;

/// Where iPXE fetches its script, `/ipxe/{mac}`: the URL contract between the DHCP boot
/// file ([`script_url`]), the router and the request log.
pub(crate) const SCRIPT_PREFIX: &str = "/ipxe/";

/// The script URL for `mac` under the boot HTTP base `http`.
pub(crate) fn script_url(http: &str, mac: Mac) -> String {
    format!("{http}{SCRIPT_PREFIX}{mac}")
}

/// Handler state.
#[derive(Clone)]
struct App {
    /// Config, leases and what DHCP learned.
    shared: Arc<Shared>,
}

/// The boot HTTP router. Callers must serve it with `ConnectInfo<SocketAddr>`.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let app = App { shared };
    Router::new()
        .route(&format!("{SCRIPT_PREFIX}{{mac}}"), get(script))
        .fallback(static_file)
        .layer(middleware::from_fn_with_state(app.clone(), log_request))
        .with_state(app)
}

/// Serves until `cancel` fires, within `[http]`'s connection limits and timeouts (see
/// [`crate::conn`]). In-flight downloads are given no grace here: the daemon bounds shutdown
/// and aborts what is left.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    cancel: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let policy = Arc::new(BootPolicy {
        shared: shared.clone(),
    });
    crate::conn::serve(listener, router(shared), policy, cancel).await
}

/// The boot listener's limits: `[http]`'s, capped by the descriptor budget.
struct BootPolicy {
    /// For the live config and the counters.
    shared: Arc<Shared>,
}

impl crate::conn::Policy for BootPolicy {
    fn limits(&self) -> crate::config::ConnLimits {
        let mut l = self.shared.config().http.limits;
        l.max_connections = l.max_connections.min(self.shared.budget().http_connections);
        l
    }

    fn refuse(&self, _local: SocketAddr, _peer: SocketAddr) -> bool {
        false
    }

    fn counters(&self) -> &crate::metrics::Counters {
        &self.shared.counters
    }

    fn engine(&self) -> crate::conn::Engine {
        crate::conn::Engine::Boot
    }

    fn queue(&self) -> crate::metrics::Queue {
        crate::metrics::Queue::Http
    }
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn script(
    State(app): State<App>,
    Path(mac): Path<String>,
    method: Method,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    let Ok(mac) = mac.parse::<Mac>() else {
        return text(StatusCode::BAD_REQUEST, "pxed: not a MAC address\n".into());
    };
    let cfg = app.shared.config();
    let peer_ip = match peer {
        SocketAddr::V4(v4) => Some(*v4.ip()),
        SocketAddr::V6(_) => None,
    };
    let plan = match plan::plan(&app.shared, &cfg, mac, peer_ip, Loader::Ipxe) {
        Ok(p) => p,
        Err(denied) => return refusal(&app.shared, mac, peer, denied),
    };
    let name = plan.name.as_str();
    let script_text = match &plan.profile {
        Profile::Script { script } => match read_template(&cfg.server.boot_dir, script).await {
            Ok(t) => Some(t),
            Err(e) => {
                warn!(%mac, profile = name, error = %e, "cannot read script template");
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("pxed: cannot read the script of profile {name}\n"),
                );
            }
        },
        _ => None,
    };
    let http = cfg.http_base();
    let vars = plan.vars(&cfg, &http);
    let body = match profiles::render_ipxe(name, &plan.profile, &vars, script_text.as_deref()) {
        Ok(body) => body,
        Err(e) => {
            warn!(%mac, profile = name, error = %e, "cannot render ipxe script");
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("pxed: profile {name} cannot be rendered\n"),
            );
        }
    };
    // HEAD never spends a one-shot.
    if method != Method::HEAD {
        plan::served(&app.shared, &plan, peer_ip, Loader::Ipxe);
    }
    text(StatusCode::OK, body)
}

/// The answer to a MAC whose boot config is refused.
fn refusal(shared: &Shared, mac: Mac, peer: SocketAddr, denied: Denied) -> Response {
    match denied {
        Denied::NoProfile => {
            info!(%mac, %peer, "no boot profile for mac");
            text(
                StatusCode::NOT_FOUND,
                format!("pxed: no boot profile for MAC {mac}; add [hosts.\"{mac}\"] or [defaults] profile\n"),
            )
        }
        Denied::NotOwner => {
            if let Some(more) = shared.quiet.http_refused.allow() {
                warn!(%mac, %peer, suppressed = more, "script request from an address that is not the machine's refused");
            }
            text(
                StatusCode::FORBIDDEN,
                format!("pxed: the script of {mac} is served to that machine's address only\n"),
            )
        }
    }
}

/// Reads a script template from `boot_dir`.
async fn read_template(boot_dir: &std::path::Path, script: &str) -> Result<String, String> {
    let path = resolve_in(boot_dir, script).map_err(|e| e.to_string())?;
    tokio::fs::read_to_string(&path)
        .await
        .map_err(|e| e.to_string())
}

async fn static_file(State(app): State<App>, req: Request) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
            "pxed is read-only\n",
        )
            .into_response();
    }
    let raw = req.uri().path();
    let decoded = match percent_encoding::percent_decode_str(raw).decode_utf8() {
        Ok(d) => d.into_owned(),
        Err(_) => return text(StatusCode::BAD_REQUEST, "pxed: path is not UTF-8\n".into()),
    };
    let cfg = app.shared.config();
    let resolved = resolve_in(&cfg.server.boot_dir, &decoded);
    // Bodies never echo the path or an OS error: those stay in pxed's own log.
    let get = req.method() == Method::GET;
    match resolved {
        Ok(path) => match ServeFile::new(&path).oneshot(req).await {
            Ok(r) => {
                let mut r = r.map(Body::new);
                if get {
                    if let Some(file) = send_file(&path, &r) {
                        r.extensions_mut().insert(file);
                    }
                }
                r
            }
            Err(e) => {
                warn!(path = %decoded, error = %e, "http file cannot be served");
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "pxed: internal error\n".into(),
                )
            }
        },
        Err(PathError::NotFound(_)) | Err(PathError::NotAFile(_)) | Err(PathError::Invalid(_)) => {
            text(StatusCode::NOT_FOUND, "pxed: no such file\n".into())
        }
        Err(PathError::Escapes(_)) => {
            if let Some(more) = app.shared.quiet.http_refused.allow() {
                warn!(path = %decoded, suppressed = more, "http path outside boot_dir refused");
            }
            text(StatusCode::FORBIDDEN, "pxed: forbidden\n".into())
        }
        Err(e) => {
            warn!(path = %decoded, error = %e, "http file cannot be served");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "pxed: internal error\n".into(),
            )
        }
    }
}

/// The file range a 200 or single-range 206 from tower-http covers, opened for `sendfile`
/// (see [`crate::conn::SendFile`]). `None`, and tower-http's own body is sent, when the
/// response is anything else or the file changed (length or mtime) since tower-http looked.
fn send_file(path: &std::path::Path, resp: &Response) -> Option<crate::conn::SendFile> {
    let header = |name| resp.headers().get(name).and_then(|v| v.to_str().ok());
    let len: u64 = header(header::CONTENT_LENGTH)?.parse().ok()?;
    let (offset, total) = match resp.status() {
        StatusCode::OK => (0, len),
        StatusCode::PARTIAL_CONTENT => {
            let (range, total) = header(header::CONTENT_RANGE)?
                .strip_prefix("bytes ")?
                .split_once('/')?;
            let (first, last) = range.split_once('-')?;
            let (first, last): (u64, u64) = (first.parse().ok()?, last.parse().ok()?);
            if last.checked_sub(first)? + 1 != len {
                return None;
            }
            (first, total.parse().ok()?)
        }
        _ => return None,
    };
    let file = std::fs::File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    // The same file tower-http looked at: a file replaced in between (same size, new bytes)
    // would be sent under the old one's ETag and Last-Modified.
    if meta.len() != total {
        return None;
    }
    if let (Some(said), Ok(modified)) = (header(header::LAST_MODIFIED), meta.modified()) {
        if said != httpdate::fmt_http_date(modified) {
            return None;
        }
    }
    Some(crate::conn::SendFile {
        file: std::sync::Arc::new(file),
        offset,
        len,
    })
}

async fn log_request(State(app): State<App>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    // The log line and the timeline keep a bounded prefix: a 60 KB path is not 60 KB of log.
    let shown = crate::events::cut_str(&path);
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let range = req.headers().get(header::RANGE).cloned();
    let mac = path
        .strip_prefix(SCRIPT_PREFIX)
        .and_then(|m| percent_encoding::percent_decode_str(m).decode_utf8().ok())
        .and_then(|m| m.parse::<Mac>().ok())
        .or_else(|| match peer {
            Some(SocketAddr::V4(v4)) => app.shared.mac_of(*v4.ip()),
            _ => None,
        });
    let resp = next.run(req).await;
    let bytes = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .or_else(|| HttpBody::size_hint(resp.body()).exact())
        .unwrap_or(0);
    count(&app.shared, resp.status(), bytes, &path, mac);
    if let Some(m) = mac {
        let kind = match (resp.status().as_u16(), path.starts_with(SCRIPT_PREFIX)) {
            (400.., _) => EventKind::HttpError,
            (_, true) => EventKind::HttpScript,
            (_, false) => EventKind::HttpFile,
        };
        // Bytes and duration are as of the response headers: the body streams afterwards.
        app.shared.record_event(
            m,
            kind,
            serde_json::json!({
                "path": shown,
                "status": resp.status().as_u16(),
                "bytes": bytes,
                "duration_ms": started.elapsed().as_millis() as u64,
            }),
        );
    }
    info!(
        mac = %mac.map(|m| m.to_string()).unwrap_or_default(),
        peer = %peer.map(|p| p.to_string()).unwrap_or_default(),
        method = %method,
        path = %shown,
        status = resp.status().as_u16(),
        bytes,
        range = %range.as_ref().and_then(|r: &HeaderValue| r.to_str().ok()).unwrap_or(""),
        duration_ms = started.elapsed().as_millis() as u64,
        "http request"
    );
    resp
}

/// Bumps the HTTP counters; a 200 for the last initrd of the machine's kernel profile
/// completes its boot.
fn count(shared: &Shared, status: StatusCode, bytes: u64, path: &str, mac: Option<Mac>) {
    let c = &shared.counters;
    match status.as_u16() {
        500.. => crate::metrics::inc(&c.http_server_error),
        400..=499 => crate::metrics::inc(&c.http_client_error),
        _ => crate::metrics::inc(&c.http_ok),
    }
    crate::metrics::add(&c.http_bytes, bytes);
    if status != StatusCode::OK {
        return;
    }
    let Some(mac) = mac else { return };
    if plan::completes_boot(shared, &mac, path) {
        crate::metrics::inc(&c.boots_completed);
    }
}

#[cfg(test)]
mod tests;
