//! The admin API: a separate listener (loopback by default) for operators with curl.
//! Every response is JSON except `/metrics`; every error has one shape:
//! `{"error": {"code": "...", "message": "...", "field": "..." | null}}`.
//! On a non-loopback address a bearer token is required; a refused request is logged
//! without the token.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::config::{ConfigError, Host};
use crate::leases::State as LeaseState;
use crate::mac::Mac;
use crate::state::Shared;

mod browser;
mod openapi;
mod views;
mod writes;

use openapi::*;
use views::*;
use writes::*;

/// Handler state.
#[derive(Clone)]
struct Admin {
    /// Everything the listeners share.
    shared: Arc<Shared>,
    /// The bearer token, when one is required.
    token: Option<Arc<str>>,
    /// One refusal line a second at most.
    refused_log: Arc<crate::limits::Throttle>,
}

/// An API error: HTTP status, stable code, message, and the field at fault.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
}

impl ApiError {
    fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
        field: Option<&str>,
    ) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: field.map(str::to_string),
        }
    }

    /// 422: the request names `field` wrongly.
    fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            message,
            Some(field),
        )
    }

    /// 404: nothing is known by `field`.
    fn not_found(field: &str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message, Some(field))
    }

    /// 500: a file or the lease store could not be written.
    fn write_failed(message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "write_failed",
            message,
            None,
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorView {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                field: self.field,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<ConfigError> for ApiError {
    fn from(e: ConfigError) -> Self {
        match &e {
            ConfigError::Invalid { key, .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_config",
                e.to_string(),
                Some(key),
            ),
            ConfigError::Io { .. } => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "config_unreadable",
                e.to_string(),
                None,
            ),
        }
    }
}

/// The admin router. `token` is `Some` when requests must carry `Authorization: Bearer`.
pub(crate) fn router(shared: Arc<Shared>, token: Option<String>) -> Router {
    let state = Admin {
        shared,
        token: token.map(Into::into),
        refused_log: Arc::new(crate::limits::Throttle::per_second()),
    };
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/status", get(status))
        .route("/api/v1/hosts", get(hosts))
        .route(
            "/api/v1/hosts/{mac}",
            get(host).put(put_host).delete(delete_host),
        )
        .route(
            "/api/v1/hosts/{mac}/next-boot",
            get(get_next_boot)
                .put(put_next_boot)
                .delete(delete_next_boot),
        )
        .route("/api/v1/profiles", get(profiles))
        .route(
            "/api/v1/profiles/{name}",
            get(profile).put(put_profile).delete(delete_profile),
        )
        .route("/api/v1/machines/{mac}/events", get(events))
        .route("/api/v1/leases", get(leases))
        .route("/api/v1/leases/{mac}", axum::routing::delete(delete_lease))
        .route("/api/v1/reload", post(reload))
        .route("/api/v1/openapi.json", get(openapi))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint", None)
        })
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            refuse_browsers,
        ))
        .with_state(state)
}

/// Serves the admin API until `cancel` fires, within `[admin] max_connections` and the
/// `[http]` timeouts (see [`crate::conn`]).
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    token: Option<String>,
    cancel: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let policy = Arc::new(AdminPolicy {
        shared: shared.clone(),
        refused_log: crate::limits::Throttle::per_second(),
    });
    crate::conn::serve(listener, router(shared, token), policy, cancel).await
}

/// The admin listener's limits, minus connections that came in from a boot subnet for an
/// address that is not on one. Linux accepts a packet for any local address on any
/// interface, so a VM on br1 can route the pod IP (or a host's management address) through
/// pxed's boot interface; the admin API must not be reachable that way.
struct AdminPolicy {
    /// For the live config's subnets and limits, and the counters.
    shared: Arc<Shared>,
    /// One refusal line a second at most: a neighbour looping connects must not grow the log.
    refused_log: crate::limits::Throttle,
}

impl crate::conn::Policy for AdminPolicy {
    fn limits(&self) -> crate::config::ConnLimits {
        let cfg = self.shared.config();
        let n = cfg
            .admin
            .max_connections
            .min(self.shared.budget().admin_connections);
        crate::config::ConnLimits {
            max_connections: n,
            max_per_client: n,
            ..cfg.http.limits
        }
    }

    fn refuse(&self, local: SocketAddr, peer: SocketAddr) -> bool {
        let cfg = self.shared.config();
        let boot: Vec<_> = cfg.dhcp.pools.iter().map(|p| p.subnet).collect();
        if !crosses_from_boot_network(local.ip(), peer.ip(), &boot) {
            return false;
        }
        self.shared
            .counters
            .refuse(crate::metrics::Refusal::AdminBootNetwork);
        if let Some(more) = self.refused_log.allow() {
            warn!(%peer, %local, suppressed = more, "admin connection from the boot network refused");
        }
        true
    }

    fn counters(&self) -> &crate::metrics::Counters {
        &self.shared.counters
    }

    fn queue(&self) -> crate::metrics::Queue {
        crate::metrics::Queue::Admin
    }
}

/// Whether a connection from `peer` to `local` came from a boot subnet to an address outside
/// every boot subnet. Pure.
pub(crate) fn crosses_from_boot_network(
    local: std::net::IpAddr,
    peer: std::net::IpAddr,
    boot: &[ipnet::Ipv4Net],
) -> bool {
    let on_boot = |ip: std::net::IpAddr| match ip.to_canonical() {
        std::net::IpAddr::V4(v4) => boot.iter().any(|n| n.contains(&v4)),
        std::net::IpAddr::V6(_) => false,
    };
    on_boot(peer) && !on_boot(local)
}

/// The bearer token a request carries, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// Compares in time independent of where the strings differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Refuses DNS rebinding, cross-origin requests, preflights and non-JSON writes (see
/// [`browser`]) before anything else, the token check included.
async fn refuse_browsers(State(st): State<Admin>, req: Request, next: Next) -> Response {
    let local = req
        .extensions()
        .get::<crate::conn::LocalAddr>()
        .map(|l| l.0);
    let cfg = st.shared.config();
    let authenticated = st
        .token
        .as_ref()
        .is_some_and(|t| bearer(req.headers()).is_some_and(|g| same(g.as_bytes(), t.as_bytes())));
    match browser::check(
        req.method(),
        req.headers(),
        local,
        &cfg.admin.allowed_hosts,
        authenticated,
    ) {
        Ok(()) => next.run(req).await,
        Err(r) => {
            st.shared.counters.refuse(r.why);
            if let Some(more) = st.refused_log.allow() {
                warn!(
                    method = %req.method(),
                    path = %req.uri().path(),
                    code = r.code,
                    suppressed = more,
                    "admin request refused"
                );
            }
            ApiError::new(r.status, r.code, r.message, Some(r.field)).into_response()
        }
    }
}

async fn auth(State(st): State<Admin>, headers: HeaderMap, req: Request, next: Next) -> Response {
    // Liveness and readiness probes carry no token; /healthz reveals nothing.
    if req.uri().path() == "/healthz" {
        return next.run(req).await;
    }
    if let Some(token) = &st.token {
        let given = bearer(&headers);
        if !given.is_some_and(|g| same(g.as_bytes(), token.as_bytes())) {
            // The token itself is never logged, only whether one was sent; and at most one
            // line a second, since anyone who reaches the port can send these.
            if let Some(more) = st.refused_log.allow() {
                warn!(
                    method = %req.method(),
                    path = %req.uri().path(),
                    token_sent = given.is_some(),
                    suppressed = more,
                    "admin request refused"
                );
            }
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid bearer token is required",
                Some("Authorization"),
            )
            .into_response();
        }
    }
    next.run(req).await
}

#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "pxed is up", body = Object)))]
async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// What this pxed may do: one entry per ability (capabilities, low ports, config writes),
/// the same facts the start-up log reports.
#[utoipa::path(get, path = "/api/v1/status", responses((status = 200, description = "Version, abilities (available or not, the capability each needs, what pxed does without it) and the names of the missing ones", body = Object)))]
async fn status(State(st): State<Admin>) -> Json<Value> {
    let report = st.shared.abilities.get().cloned().unwrap_or_default();
    let missing: Vec<&str> = report.missing().map(|a| a.name).collect();
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "abilities": report.abilities,
        "missing": missing,
    }))
}

#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text: requests by protocol and outcome, bytes served, boots, leases per pool", content_type = "text/plain")))]
async fn metrics(State(st): State<Admin>) -> Response {
    let now = crate::state::unix_now();
    let body = crate::metrics::render(&st.shared.counters, &st.shared.pool_gauges(now));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// The `{mac}` of a route, parsed: a bad one is a 400 naming the field `mac`.
struct MacPath(Mac);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for MacPath {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_mac",
                    e.body_text(),
                    Some("mac"),
                )
            })?;
        parse_mac(&raw).map(MacPath)
    }
}

fn parse_mac(s: &str) -> Result<Mac, ApiError> {
    s.parse().map_err(|e: crate::mac::MacParseError| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_mac",
            e.to_string(),
            Some("mac"),
        )
    })
}

#[utoipa::path(get, path = "/api/v1/hosts", responses((status = 200, description = "Every host", body = [HostView])))]
async fn hosts(State(st): State<Admin>) -> Json<Vec<HostView>> {
    let cfg = st.shared.config();
    let mut list: Vec<(&Mac, &Host)> = cfg.hosts.iter().collect();
    list.sort_by_key(|(m, _)| **m);
    Json(list.into_iter().map(|(m, h)| HostView::new(m, h)).collect())
}

#[utoipa::path(get, path = "/api/v1/hosts/{mac}", params(("mac" = String, Path, description = "MAC, `:` or `-`, any case")), responses((status = 200, body = HostView), (status = 400, description = "Bad MAC", body = ErrorView), (status = 404, body = ErrorView)))]
async fn host(State(st): State<Admin>, MacPath(mac): MacPath) -> Result<Json<HostView>, ApiError> {
    let cfg = st.shared.config();
    match cfg.hosts.get(&mac) {
        Some(h) => Ok(Json(HostView::new(&mac, h))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no host {mac}"),
            Some("mac"),
        )),
    }
}

/// The machine's boot timeline, oldest first.
#[utoipa::path(get, path = "/api/v1/machines/{mac}/events", params(("mac" = String, Path)), responses((status = 200, description = "Boot timeline, oldest first", body = Object), (status = 400, description = "Bad MAC", body = ErrorView)))]
async fn events(State(st): State<Admin>, MacPath(mac): MacPath) -> Result<Json<Value>, ApiError> {
    let events: Vec<Value> = st
        .shared
        .events
        .get(&mac)
        .iter()
        .map(|e| e.to_json())
        .collect();
    Ok(Json(json!({"mac": mac.to_string(), "events": events})))
}

#[utoipa::path(get, path = "/api/v1/profiles", responses((status = 200, body = [ProfileView])))]
async fn profiles(State(st): State<Admin>) -> Json<Vec<ProfileView>> {
    let cfg = st.shared.config();
    Json(
        cfg.profiles
            .iter()
            .map(|(n, p)| ProfileView::new(n, p))
            .collect(),
    )
}

#[utoipa::path(get, path = "/api/v1/profiles/{name}", params(("name" = String, Path)), responses((status = 200, body = ProfileView), (status = 404, body = ErrorView)))]
async fn profile(
    State(st): State<Admin>,
    Path(name): Path<String>,
) -> Result<Json<ProfileView>, ApiError> {
    let cfg = st.shared.config();
    match cfg.profiles.get(&name) {
        Some(p) => Ok(Json(ProfileView::new(&name, p))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no profile {name}"),
            Some("name"),
        )),
    }
}

#[utoipa::path(get, path = "/api/v1/leases", responses((status = 200, body = [LeaseView])))]
async fn leases(State(st): State<Admin>) -> Json<Vec<LeaseView>> {
    let now = crate::state::unix_now();
    let table = st.shared.leases.lock().unwrap_or_else(|e| e.into_inner());
    let mut list: Vec<LeaseView> = table
        .iter()
        .filter(|l| l.state != LeaseState::Offered)
        .map(|l| LeaseView::new(l, now))
        .collect();
    // By the address as text, as this endpoint has always listed them.
    list.sort_by(|a, b| a.ip.cmp(&b.ip));
    Json(list)
}

#[utoipa::path(post, path = "/api/v1/reload", responses((status = 200, body = Object), (status = 422, description = "The file does not validate; the old config stays live", body = ErrorView)))]
async fn reload(State(st): State<Admin>) -> Result<Json<Value>, ApiError> {
    match crate::reload::reload(&st.shared) {
        Ok(r) => {
            info!(profiles = r.profiles, hosts = r.hosts, needs_restart = ?r.needs_restart, trigger = "api", "config reloaded");
            Ok(Json(json!({
                "reloaded": true,
                "profiles": r.profiles,
                "hosts": r.hosts,
                "needs_restart": r.needs_restart,
                "warnings": r.warnings,
            })))
        }
        Err(e) => {
            warn!(error = %e, trigger = "api", "config reload refused; the old config stays live");
            Err(e.into())
        }
    }
}

/// Reads a request body into `T`, refusing it in the order the checks before it used: a
/// body that is not JSON is a 400 naming `body`; one that is not an object, a 422 naming
/// `body`; then a key that `T` does not have, and last a value of the wrong type, each a 422
/// naming that key, as a config error names its key. A duplicate key's last value counts.
fn json_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not JSON: {e}"),
            Some("body"),
        )
    })?;
    let Value::Object(map) = value else {
        return Err(ApiError::invalid("body", "the body must be a JSON object"));
    };
    // Keys first. Every field of a body type is an `Option`, so with every value nulled
    // this pass cannot fail on a value, and `serde_ignored` sees each key `T` lacks.
    let keys: serde_json::Map<String, Value> =
        map.keys().map(|k| (k.clone(), Value::Null)).collect();
    let mut unknown = Vec::new();
    let mut note_unknown = |path: serde_ignored::Path| unknown.push(path.to_string());
    let _ = T::deserialize(serde_ignored::Deserializer::new(
        Value::Object(keys),
        &mut note_unknown,
    ));
    if let Some(field) = unknown.first() {
        return Err(ApiError::invalid(
            field,
            format!("unknown field `{field}` (GET /api/v1/openapi.json lists this body's fields)"),
        ));
    }
    serde_path_to_error::deserialize(Value::Object(map)).map_err(|e| {
        let field = match e.path().iter().next() {
            Some(serde_path_to_error::Segment::Map { key }) => key.clone(),
            _ => "body".to_string(),
        };
        ApiError::invalid(&field, e.into_inner().to_string())
    })
}

#[cfg(test)]
mod tests;
