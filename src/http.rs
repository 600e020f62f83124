//! The boot HTTP listener: per-MAC iPXE scripts at `/ipxe/{mac}` and read-only static
//! files from `boot_dir` (Range and ETag by tower-http). Every request is logged with the
//! client's MAC where pxed knows it.

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
use crate::config::ScriptAccess;
use crate::mac::Mac;
use crate::metrics::Refusal;
use crate::profiles::{self, Profile, Vars};
use crate::state::Shared;

/// Handler state.
#[derive(Clone)]
struct App {
    /// Config, leases and what DHCP learned.
    shared: Arc<Shared>,
}

/// The boot HTTP router. Callers must serve it with `ConnectInfo<SocketAddr>`.
pub fn router(shared: Arc<Shared>) -> Router {
    let app = App { shared };
    Router::new()
        .route("/ipxe/{mac}", get(script))
        .fallback(static_file)
        .layer(middleware::from_fn_with_state(app.clone(), log_request))
        .with_state(app)
}

/// Serves until `cancel` fires, within `[http]`'s connection limits and timeouts (see
/// [`crate::conn`]). In-flight downloads are given no grace here: the daemon bounds shutdown
/// and aborts what is left.
pub async fn serve(
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
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Whether the request for a MAC's script comes from the address that owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asker {
    /// The address pxed leased to the MAC (or saw it use in proxy mode).
    Owner,
    /// pxed knows no address for the MAC yet (a static address, another DHCP server).
    Unknown,
    /// Another address.
    Other,
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
    let Some(own) = cfg.profile_for(&mac) else {
        info!(%mac, %peer, "no boot profile for mac");
        return text(
            StatusCode::NOT_FOUND,
            format!("pxed: no boot profile for MAC {mac}; add [hosts.\"{mac}\"] or [defaults] profile\n"),
        );
    };
    let peer_ip = match peer {
        SocketAddr::V4(v4) => Some(*v4.ip()),
        SocketAddr::V6(_) => None,
    };
    let owners = app.shared.owners_of(&mac, crate::state::unix_now());
    let asker = match peer_ip {
        _ if owners.is_empty() => Asker::Unknown,
        Some(ip) if owners.contains(&ip) => Asker::Owner,
        _ => Asker::Other,
    };
    if asker == Asker::Other && cfg.http.script_access == ScriptAccess::Owner {
        app.shared.counters.refuse(Refusal::HttpNotOwner);
        if let Some(more) = app.shared.quiet.http_refused.allow() {
            warn!(%mac, %peer, suppressed = more, "script request from an address that is not the machine's refused");
        }
        return text(
            StatusCode::FORBIDDEN,
            format!("pxed: the script of {mac} is served to that machine's address only\n"),
        );
    }
    // A pending one-shot wins over the host's own profile, but only for the machine itself:
    // anyone else would spend it (or read it) for that machine. HEAD never spends one.
    let one_shot = app
        .shared
        .next_boots
        .get(&mac)
        .filter(|p| asker == Asker::Owner && cfg.profiles.contains_key(p));
    let name = one_shot.as_deref().unwrap_or(own);
    let Some(profile) = cfg.profiles.get(name) else {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "pxed: internal error\n".into(),
        );
    };
    let script_text = match profile {
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
    let host = cfg.hosts.get(&mac);
    let ip = app.shared.ip_of(&mac).or(peer_ip);
    let arch = app.shared.arch_of(&mac).unwrap_or_else(|| "unknown".into());
    let http = cfg.http_base();
    let vars = Vars {
        mac,
        ip,
        hostname: host.and_then(|h| h.hostname.as_deref()),
        server: cfg.server.address,
        http: &http,
        arch: &arch,
    };
    let body = match profiles::render_ipxe(name, profile, &vars, script_text.as_deref()) {
        Ok(body) => body,
        Err(e) => {
            warn!(%mac, profile = name, error = %e, "cannot render ipxe script");
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("pxed: profile {name} cannot be rendered\n"),
            );
        }
    };
    if method == Method::HEAD {
        return text(StatusCode::OK, body);
    }
    if let Some(ip) = peer_ip {
        app.shared.note_script_peer(ip, mac);
    }
    crate::metrics::inc(&app.shared.counters.boots_started);
    if let Some(p) = &one_shot {
        // Spent now: the machine has its script. Only if it still names the profile served,
        // so one set meanwhile is kept. A failure to save is logged; the worst case is that
        // the one-shot is offered again after a restart.
        match app.shared.next_boots.spend(&mac, p) {
            Ok(true) => info!(%mac, profile = name, "one-shot boot spent"),
            Ok(false) => {
                info!(%mac, profile = name, "one-shot boot changed while served; the new one is kept")
            }
            Err(e) => warn!(%mac, error = %e, "cannot record the spent one-shot boot"),
        }
    }
    app.shared.record_event(
        mac,
        "boot_profile",
        serde_json::json!({"profile": name, "profile_kind": profile.kind(), "one_shot": one_shot.is_some(), "arch": arch}),
    );
    info!(%mac, profile = name, kind = profile.kind(), %arch, one_shot = one_shot.is_some(), "ipxe script served");
    text(StatusCode::OK, body)
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
    match resolved {
        Ok(path) => match ServeFile::new(path).oneshot(req).await {
            Ok(r) => r.map(Body::new),
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
        .strip_prefix("/ipxe/")
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
        let kind = match (resp.status().as_u16(), path.starts_with("/ipxe/")) {
            (400.., _) => "http_error",
            (_, true) => "http_script",
            (_, false) => "http_file",
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
    let cfg = shared.config();
    let last = cfg
        .profile_for(&mac)
        .and_then(|name| cfg.profiles.get(name))
        .and_then(|p| match p {
            Profile::Kernel { initrd, .. } => initrd.last().cloned(),
            _ => None,
        });
    if last.is_some_and(|l| l.trim_start_matches('/') == path.trim_start_matches('/')) {
        crate::metrics::inc(&c.boots_completed);
    }
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
