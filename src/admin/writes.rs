//! The admin API's writes: edits of the TOML file, one-shot boots, and lease deletion.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use tracing::info;

use super::views::{ErrorView, HostView, NextBootView, ProfileView};
use super::{json_body, Admin, ApiError, MacPath};
use crate::edit::{EditError, HostBody, ProfileBody};

impl From<EditError> for ApiError {
    fn from(e: EditError) -> Self {
        let msg = e.to_string();
        match e {
            EditError::Field { field, .. } => ApiError::invalid(&field, msg),
            EditError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", msg, None),
            EditError::InUse { .. } => {
                ApiError::new(StatusCode::CONFLICT, "in_use", msg, Some("name"))
            }
            EditError::Unparsable(_) => {
                ApiError::new(StatusCode::CONFLICT, "config_unparsable", msg, None)
            }
        }
    }
}

/// Applies `edit` (see [`apply_edit`]), then answers with what `view` finds in the config
/// now live (`null` if nothing).
fn edited<V: serde::Serialize>(
    st: &Admin,
    edit: impl FnOnce(&str) -> Result<String, EditError>,
    view: impl FnOnce(&crate::config::Config) -> Option<V>,
) -> Result<Json<Option<V>>, ApiError> {
    apply_edit(st, edit)?;
    Ok(Json(view(&st.shared.config())))
}

/// Applies an edit to the config file: the new text must validate before it is written
/// (atomically) and made live; if anything fails, neither the file nor the live config
/// changes.
pub(super) fn apply_edit(
    st: &Admin,
    edit: impl FnOnce(&str) -> Result<String, EditError>,
) -> Result<(), ApiError> {
    let _one_at_a_time = st
        .shared
        .edit_lock
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let path = st.shared.config().source.clone();
    let text = std::fs::read_to_string(&path).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "config_unreadable",
            format!("{}: {e}", path.display()),
            None,
        )
    })?;
    let new_text = edit(&text)?;
    let new_config = crate::config::parse(&path, &new_text)?;
    crate::edit::write_atomically(&path, &new_text)
        .map_err(|e| ApiError::write_failed(format!("{}: {e}", path.display())))?;
    *st.shared
        .self_written
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some(crate::watch::digest_bytes(new_text.as_bytes()));
    st.shared.replace_config(new_config);
    info!(file = %path.display(), "config edited through the admin api");
    Ok(())
}

#[utoipa::path(put, path = "/api/v1/hosts/{mac}", params(("mac" = String, Path)), request_body = HostBody, responses((status = 200, description = "Written to the TOML file and live", body = HostView), (status = 422, description = "Does not validate; nothing changed", body = ErrorView)))]
pub(super) async fn put_host(
    State(st): State<Admin>,
    MacPath(mac): MacPath,
    body: axum::body::Bytes,
) -> Result<Json<Option<HostView>>, ApiError> {
    let body: HostBody = json_body(&body)?;
    edited(
        &st,
        |t| crate::edit::put_host(t, &mac, &body),
        |cfg| cfg.hosts.get(&mac).map(|h| HostView::new(&mac, h)),
    )
}

#[utoipa::path(delete, path = "/api/v1/hosts/{mac}", params(("mac" = String, Path)), responses((status = 200, body = Object), (status = 404, body = ErrorView)))]
pub(super) async fn delete_host(
    State(st): State<Admin>,
    MacPath(mac): MacPath,
) -> Result<Json<Option<Value>>, ApiError> {
    let deleted = json!({"deleted": mac.to_string()});
    edited(
        &st,
        |t| crate::edit::delete_host(t, &mac),
        |_| Some(deleted),
    )
}

#[utoipa::path(put, path = "/api/v1/profiles/{name}", params(("name" = String, Path)), request_body = ProfileBody, responses((status = 200, body = ProfileView), (status = 422, body = ErrorView)))]
pub(super) async fn put_profile(
    State(st): State<Admin>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Option<ProfileView>>, ApiError> {
    let body: ProfileBody = json_body(&body)?;
    edited(
        &st,
        |t| crate::edit::put_profile(t, &name, &body),
        |cfg| cfg.profiles.get(&name).map(|p| ProfileView::new(&name, p)),
    )
}

#[utoipa::path(delete, path = "/api/v1/profiles/{name}", params(("name" = String, Path)), responses((status = 200, body = Object), (status = 404, body = ErrorView), (status = 409, description = "Hosts still use it", body = ErrorView)))]
pub(super) async fn delete_profile(
    State(st): State<Admin>,
    Path(name): Path<String>,
) -> Result<Json<Option<Value>>, ApiError> {
    let deleted = json!({"deleted": name});
    edited(
        &st,
        |t| crate::edit::delete_profile(t, &name),
        |_| Some(deleted),
    )
}

/// `PUT /api/v1/hosts/{mac}/next-boot`'s body.
#[derive(serde::Deserialize, utoipa::ToSchema)]
pub(super) struct NextBootBody {
    /// Required: the profile the next network boot uses, once.
    #[schema(required = true)]
    profile: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/hosts/{mac}/next-boot", params(("mac" = String, Path)), responses((status = 200, body = NextBootView)))]
pub(super) async fn get_next_boot(
    State(st): State<Admin>,
    MacPath(mac): MacPath,
) -> Result<Json<NextBootView>, ApiError> {
    Ok(Json(NextBootView::new(
        &mac,
        st.shared.next_boots.get(&mac),
    )))
}

/// `{"profile": "installer"}`: the machine's next network boot uses that profile once.
#[utoipa::path(put, path = "/api/v1/hosts/{mac}/next-boot", params(("mac" = String, Path)), request_body = NextBootBody, responses((status = 200, description = "The next network boot uses this profile once; spent when its script is served", body = NextBootView), (status = 404, body = ErrorView), (status = 422, body = ErrorView)))]
pub(super) async fn put_next_boot(
    State(st): State<Admin>,
    MacPath(mac): MacPath,
    body: axum::body::Bytes,
) -> Result<Json<NextBootView>, ApiError> {
    let body: NextBootBody = json_body(&body)?;
    let Some(profile) = body.profile.as_deref() else {
        return Err(ApiError::invalid(
            "profile",
            "`profile` (a string) is required",
        ));
    };
    let cfg = st.shared.config();
    let Some(p) = cfg.profiles.get(profile) else {
        return Err(ApiError::invalid(
            "profile",
            format!("no profile named `{profile}`"),
        ));
    };
    if cfg.secure_boot_for(&mac) {
        if let Err(why) = crate::grub::supports(p) {
            return Err(ApiError::invalid("profile", format!("{mac} boots shim → GRUB → kernel (secure_boot), and profile `{profile}` cannot: {why}")));
        }
    }
    if cfg.profile_for(&mac).is_none() {
        return Err(ApiError::not_found(
            "mac",
            format!("no host {mac}; add it first"),
        ));
    }
    st.shared
        .next_boots
        .set(mac, profile.to_string())
        .map_err(|e| ApiError::write_failed(e.to_string()))?;
    info!(%mac, profile, "one-shot boot set");
    Ok(Json(NextBootView::new(&mac, Some(profile.to_string()))))
}

#[utoipa::path(delete, path = "/api/v1/hosts/{mac}/next-boot", params(("mac" = String, Path)), responses((status = 200, body = NextBootView), (status = 404, body = ErrorView)))]
pub(super) async fn delete_next_boot(
    State(st): State<Admin>,
    MacPath(mac): MacPath,
) -> Result<Json<NextBootView>, ApiError> {
    match st.shared.next_boots.take(&mac) {
        Ok(Some(p)) => {
            info!(%mac, profile = %p, "one-shot boot cancelled");
            Ok(Json(NextBootView::new(&mac, None)))
        }
        Ok(None) => Err(ApiError::not_found(
            "mac",
            format!("no one-shot boot for {mac}"),
        )),
        Err(e) => Err(ApiError::write_failed(e.to_string())),
    }
}

/// Forgets a MAC's lease, in memory and in the store, so its address can go to someone else
/// and the machine starts over with DISCOVER.
#[utoipa::path(delete, path = "/api/v1/leases/{mac}", params(("mac" = String, Path)), responses((status = 200, body = Object), (status = 404, body = ErrorView)))]
pub(super) async fn delete_lease(
    State(st): State<Admin>,
    MacPath(mac): MacPath,
) -> Result<Json<Value>, ApiError> {
    let Some(commits) = st.shared.commits.get() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_not_running",
            "the lease store is not running",
            None,
        ));
    };
    match commits.forget_mac(&st.shared, &mac).await {
        Ok(Some(lease)) => {
            info!(%mac, ip = %lease.ip, "lease deleted through the admin api");
            Ok(Json(
                json!({"deleted": {"mac": mac.to_string(), "ip": lease.ip.to_string()}}),
            ))
        }
        Ok(None) => Err(ApiError::not_found("mac", format!("no lease for {mac}"))),
        Err(e) => Err(ApiError::write_failed(e)),
    }
}
