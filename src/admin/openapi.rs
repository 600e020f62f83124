//! The OpenAPI document, generated from the `#[utoipa::path]` annotations on the handlers.

use axum::Json;
use serde_json::Value;

use super::writes::*;
use super::*;

/// The error shape every endpoint uses.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct ErrorDoc {
    error: ErrorDetailDoc,
}

/// Inside [`ErrorDoc`].
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct ErrorDetailDoc {
    /// Stable machine-readable code, e.g. `invalid_mac`, `invalid_config`, `in_use`.
    code: String,
    /// What is wrong, for people.
    message: String,
    /// The field (or config key) at fault, if any.
    field: Option<String>,
}

/// A host as returned.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct HostDoc {
    mac: String,
    profile: String,
    ip: Option<String>,
    hostname: Option<String>,
    /// Boots shim → GRUB → kernel on x86-64 UEFI; `null` takes `[defaults] secure_boot`.
    secure_boot: Option<bool>,
}

/// `PUT /api/v1/hosts/{mac}` body.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct HostBodyDoc {
    profile: String,
    ip: Option<String>,
    hostname: Option<String>,
    /// Omitted or `null`: the host takes `[defaults] secure_boot`.
    secure_boot: Option<bool>,
}

/// A profile as returned: `kind` is kernel, script, chain or local, and the keys of that
/// kind follow.
#[derive(utoipa::ToSchema, serde::Serialize)]
#[allow(dead_code)]
pub(super) struct ProfileDoc {
    name: String,
    kind: String,
    #[serde(flatten)]
    keys: ProfileBodyDoc,
}

/// `PUT /api/v1/profiles/{name}` body: the keys of exactly one profile kind.
#[derive(utoipa::ToSchema, serde::Serialize)]
#[allow(dead_code)]
pub(super) struct ProfileBodyDoc {
    kernel: Option<String>,
    initrd: Option<Vec<String>>,
    cmdline: Option<String>,
    script: Option<String>,
    chain: Option<String>,
    action: Option<String>,
}

/// `PUT /api/v1/hosts/{mac}/next-boot` body.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct NextBootBodyDoc {
    profile: String,
}

/// A pending one-shot boot (`next_boot` is null when there is none).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct NextBootDoc {
    mac: String,
    next_boot: Option<NextBootBodyDoc>,
}

/// A lease as returned.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct LeaseDoc {
    mac: String,
    client_id: String,
    ip: String,
    state: String,
    active: bool,
    expires: u64,
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "pxed admin API",
        description = "Operate pxed with curl: hosts, profiles, leases, one-shot boots, boot timelines, reload, metrics. Off loopback every request needs `Authorization: Bearer <token>`."
    ),
    paths(
        healthz,
        status,
        metrics,
        hosts,
        host,
        put_host,
        delete_host,
        get_next_boot,
        put_next_boot,
        delete_next_boot,
        profiles,
        profile,
        put_profile,
        delete_profile,
        events,
        leases,
        delete_lease,
        reload
    ),
    components(schemas(
        ErrorDoc,
        ErrorDetailDoc,
        HostDoc,
        HostBodyDoc,
        ProfileDoc,
        ProfileBodyDoc,
        NextBootDoc,
        NextBootBodyDoc,
        LeaseDoc
    ))
)]
struct ApiDoc;

/// The OpenAPI document of this API.
pub(crate) fn openapi_json() -> Value {
    serde_json::to_value(<ApiDoc as utoipa::OpenApi>::openapi()).unwrap_or(Value::Null)
}

pub(super) async fn openapi() -> Json<Value> {
    Json(openapi_json())
}
