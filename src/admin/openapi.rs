//! The OpenAPI document, generated from the `#[utoipa::path]` annotations on the handlers
//! and from the request and answer types themselves (`edit::HostBody`, `views`).

use axum::Json;
use serde_json::Value;

use super::views::*;
use super::writes::*;
use super::*;
use crate::edit::{HostBody, ProfileBody};

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
        ErrorView,
        ErrorDetail,
        HostView,
        HostBody,
        ProfileView,
        ProfileBody,
        NextBootView,
        NextBoot,
        NextBootBody,
        LeaseView
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
