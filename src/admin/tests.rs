use super::*;
use axum::body::Body;
use http_body_util::BodyExt;
use tower::ServiceExt;

/// The config every test starts from. `STATE_DIR` stands for the fixture's directory.
fn config() -> String {
    let server = crate::testkit::server(
        std::path::Path::new("/srv/pxed/boot"),
        std::path::Path::new("STATE_DIR"),
    );
    format!(
        "# a commented config{server}{}{}",
        crate::testkit::DHCP,
        r#"
[profiles.fedora]
kernel = "vmlinuz"
initrd = ["initrd.gz"]
cmdline = "console=ttyS0"

[profiles.disk]
action = "local"

[hosts."de:00:00:00:00:de"]
profile = "fedora"
hostname = "vm-de"
"#
    )
}

struct Fixture {
    dir: tempfile::TempDir,
    shared: Arc<Shared>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pxed.toml");
        let config = config().replace("STATE_DIR", &dir.path().join("state").display().to_string());
        std::fs::write(&path, &config).unwrap();
        let (cfg, _) = crate::config::load(&path).unwrap();
        Fixture {
            dir,
            shared: Shared::new(cfg),
        }
    }

    fn app(&self, token: Option<&str>) -> Router {
        router(self.shared.clone(), token.map(str::to_string))
    }

    fn write(&self, text: &str) {
        let text = text.replace(
            "STATE_DIR",
            &self.dir.path().join("state").display().to_string(),
        );
        std::fs::write(self.dir.path().join("pxed.toml"), text).unwrap();
    }
}

async fn call(app: &Router, method: &str, uri: &str, auth: Option<&str>) -> (StatusCode, String) {
    let mut req = axum::http::Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "127.0.0.1:9091");
    if method != "GET" && method != "HEAD" {
        req = req.header("content-type", "application/json");
    }
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[tokio::test]
async fn health_hosts_and_profiles() {
    let f = Fixture::new();
    let app = f.app(None);
    let (s, b) = call(&app, "GET", "/healthz", None).await;
    assert_eq!((s, json_of(&b)), (StatusCode::OK, json!({"status": "ok"})));
    let (s, b) = call(&app, "GET", "/api/v1/hosts", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        json_of(&b),
        json!([{"mac": "de:00:00:00:00:de", "profile": "fedora", "ip": null, "hostname": "vm-de", "secure_boot": null}])
    );
    let (s, b) = call(&app, "GET", "/api/v1/hosts/DE-00-00-00-00-DE", None).await;
    assert_eq!(
        (s, json_of(&b)["profile"].clone()),
        (StatusCode::OK, json!("fedora"))
    );
    let (s, b) = call(&app, "GET", "/api/v1/profiles", None).await;
    assert_eq!(s, StatusCode::OK);
    let list = json_of(&b);
    assert_eq!(
        list[0],
        json!({"name": "disk", "kind": "local", "action": "local"})
    );
    assert_eq!(list[1]["kind"], json!("kernel"));
    let (s, b) = call(&app, "GET", "/api/v1/profiles/fedora", None).await;
    assert_eq!(
        (s, json_of(&b)["initrd"].clone()),
        (StatusCode::OK, json!(["initrd.gz"]))
    );
}

#[tokio::test]
async fn errors_have_one_shape_naming_the_field() {
    let f = Fixture::new();
    let app = f.app(None);
    let (s, b) = call(&app, "GET", "/api/v1/hosts/not-a-mac", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let e = json_of(&b);
    assert_eq!(e["error"]["code"], json!("invalid_mac"));
    assert_eq!(e["error"]["field"], json!("mac"));
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not-a-mac"));
    let (s, b) = call(&app, "GET", "/api/v1/hosts/52:54:00:00:00:01", None).await;
    assert_eq!(
        (s, json_of(&b)["error"]["code"].clone()),
        (StatusCode::NOT_FOUND, json!("not_found"))
    );
    let (s, b) = call(&app, "GET", "/api/v1/profiles/nope", None).await;
    assert_eq!(
        (s, json_of(&b)["error"]["field"].clone()),
        (StatusCode::NOT_FOUND, json!("name"))
    );
    let (s, b) = call(&app, "GET", "/api/v1/nothing", None).await;
    assert_eq!(
        (s, json_of(&b)["error"]["code"].clone()),
        (StatusCode::NOT_FOUND, json!("not_found"))
    );
}

#[tokio::test]
async fn a_token_is_required_when_configured() {
    let f = Fixture::new();
    let app = f.app(Some("s3cret-token"));
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("s3cret-token"),
        Some("Basic s3cret-token"),
    ] {
        let (s, b) = call(&app, "GET", "/api/v1/hosts", auth).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{auth:?}");
        let e = json_of(&b);
        assert_eq!(e["error"]["code"], json!("unauthorized"));
        assert!(!b.contains("s3cret"), "the token leaked into the response");
    }
    let (s, _) = call(&app, "GET", "/api/v1/hosts", Some("Bearer s3cret-token")).await;
    assert_eq!(s, StatusCode::OK);
    // Probes carry no token: /healthz alone is open.
    let (s, _) = call(&app, "GET", "/healthz", None).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn leases_and_metrics() {
    let f = Fixture::new();
    {
        let cfg = f.shared.config();
        let mut t = f.shared.leases.lock().unwrap();
        let mac: Mac = "de:00:00:00:00:de".parse().unwrap();
        let id = crate::leases::ClientId::from_mac(mac);
        t.bind(
            &id,
            mac,
            "10.123.0.100".parse().unwrap(),
            LeaseState::Bound,
            u64::MAX / 2,
        );
        drop(cfg);
    }
    crate::metrics::inc(&f.shared.counters.dhcp_replies);
    let app = f.app(None);
    let (s, b) = call(&app, "GET", "/api/v1/leases", None).await;
    assert_eq!(s, StatusCode::OK);
    let l = json_of(&b);
    assert_eq!(l[0]["mac"], json!("de:00:00:00:00:de"));
    assert_eq!(l[0]["ip"], json!("10.123.0.100"));
    assert_eq!(l[0]["state"], json!("bound"));
    assert_eq!(l[0]["client_id"], json!("01de00000000de"));
    let (s, b) = call(&app, "GET", "/metrics", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        b.contains("pxed_requests_total{protocol=\"dhcp\",outcome=\"replied\"} 1\n"),
        "{b}"
    );
    assert!(
        b.contains("pxed_leases_in_use{subnet=\"10.123.0.0/24\"} 1\n"),
        "{b}"
    );
    assert!(
        b.contains("pxed_leases_free{subnet=\"10.123.0.0/24\"} 100\n"),
        "{b}"
    );
}

#[tokio::test]
async fn a_broken_file_is_refused_and_the_old_config_stays_live() {
    let f = Fixture::new();
    let app = f.app(None);
    f.write(&config().replace(
        "profile = \"fedora\"\nhostname",
        "profile = \"ubuntu\"\nhostname",
    ));
    let (s, b) = call(&app, "POST", "/api/v1/reload", None).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let e = json_of(&b);
    assert_eq!(e["error"]["code"], json!("invalid_config"));
    assert_eq!(
        e["error"]["field"],
        json!("hosts.\"de:00:00:00:00:de\".profile")
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("pxed.toml:21:1"),
        "{e}"
    );
    let (_, b) = call(&app, "GET", "/api/v1/hosts/de:00:00:00:00:de", None).await;
    assert_eq!(
        json_of(&b)["profile"],
        json!("fedora"),
        "old config replaced"
    );

    f.write(&format!(
        "{}\n[hosts.\"52:54:00:00:00:01\"]\nprofile = \"disk\"\n",
        config()
    ));
    let (s, b) = call(&app, "POST", "/api/v1/reload", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(json_of(&b)["hosts"], json!(2));
    let (s, b) = call(&app, "GET", "/api/v1/hosts/52:54:00:00:00:01", None).await;
    assert_eq!(
        (s, json_of(&b)["profile"].clone()),
        (StatusCode::OK, json!("disk"))
    );
}

async fn send(app: &Router, method: &str, uri: &str, body: &str) -> (StatusCode, String) {
    let req = axum::http::Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "127.0.0.1:9091")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn edits_are_written_back_keeping_comments_and_go_live() {
    let f = Fixture::new();
    let app = f.app(None);
    let path = f.dir.path().join("pxed.toml");
    let (s, b) = send(
        &app,
        "PUT",
        "/api/v1/hosts/52-54-00-00-00-01",
        r#"{"profile": "disk", "hostname": "db-1"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        json_of(&b),
        json!({"mac": "52:54:00:00:00:01", "profile": "disk", "ip": null, "hostname": "db-1", "secure_boot": null})
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("# a commented config\n"),
        "comment lost:\n{text}"
    );
    assert!(
        text.contains("[hosts.\"52:54:00:00:00:01\"]\nprofile = \"disk\"\nhostname = \"db-1\"\n"),
        "{text}"
    );
    let (s, b) = call(&app, "GET", "/api/v1/hosts/52:54:00:00:00:01", None).await;
    assert_eq!(
        (s, json_of(&b)["hostname"].clone()),
        (StatusCode::OK, json!("db-1"))
    );

    let (s, b) = send(
        &app,
        "PUT",
        "/api/v1/profiles/rescue",
        r#"{"kernel": "r/vmlinuz", "initrd": ["r/initrd.img"], "cmdline": "console=ttyS0"}"#,
    )
    .await;
    assert_eq!(
        (s, json_of(&b)["kind"].clone()),
        (StatusCode::OK, json!("kernel")),
        "{b}"
    );
    let (s, b) = call(&app, "DELETE", "/api/v1/hosts/52:54:00:00:00:01", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, _) = call(&app, "GET", "/api/v1/hosts/52:54:00:00:00:01", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(!std::fs::read_to_string(&path)
        .unwrap()
        .contains("52:54:00:00:00:01"));
}

#[tokio::test]
async fn an_invalid_edit_changes_nothing_on_disk_or_in_memory() {
    let f = Fixture::new();
    let app = f.app(None);
    let path = f.dir.path().join("pxed.toml");
    let before = std::fs::read_to_string(&path).unwrap();
    let cases = [
        (
            "PUT",
            "/api/v1/hosts/52:54:00:00:00:01",
            r#"{"profile": "missing"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "hosts.\"52:54:00:00:00:01\".profile",
        ),
        (
            "PUT",
            "/api/v1/hosts/52:54:00:00:00:01",
            r#"{"profile": "disk", "ip": "192.168.9.9"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "hosts.\"52:54:00:00:00:01\".ip",
        ),
        (
            "PUT",
            "/api/v1/hosts/52:54:00:00:00:01",
            r#"{"profile": "disk", "colour": "red"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "colour",
        ),
        (
            "PUT",
            "/api/v1/hosts/52:54:00:00:00:01",
            "not json",
            StatusCode::BAD_REQUEST,
            "body",
        ),
        (
            "PUT",
            "/api/v1/hosts/52:54:00:00:00:01",
            r#"{"profile": "disk"} trailing"#,
            StatusCode::BAD_REQUEST,
            "body",
        ),
        (
            "PUT",
            "/api/v1/hosts/52:54:00:00:00:01",
            r#"["disk"]"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "body",
        ),
        (
            "PUT",
            "/api/v1/hosts/52:54:00:00:00:01",
            r#"["disk", null, null, null]"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "body",
        ),
        (
            "PUT",
            "/api/v1/hosts/52:54:00:00:00:01",
            r#"{"profile": 5, "colour": "red"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "colour",
        ),
        (
            "PUT",
            "/api/v1/hosts/52:54:00:00:00:01",
            r#"{"profile": 5,"#,
            StatusCode::BAD_REQUEST,
            "body",
        ),
        (
            "PUT",
            "/api/v1/hosts/52:54:00:00:00:01/next-boot",
            r#"["disk"]"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "body",
        ),
        (
            "PUT",
            "/api/v1/hosts/52:54:00:00:00:01",
            r#"{"profile": 5}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "profile",
        ),
        (
            "PUT",
            "/api/v1/hosts/52:54:00:00:00:01",
            r#"{"hostname": "h"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "profile",
        ),
        (
            "PUT",
            "/api/v1/hosts/52:54:00:00:00:01",
            r#"{"profile": "disk", "secure_boot": "yes"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "secure_boot",
        ),
        (
            "PUT",
            "/api/v1/profiles/rescue",
            r#"{"kernel": "r/vmlinuz", "initrd": ["a", 3]}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "initrd",
        ),
        (
            "PUT",
            "/api/v1/profiles/rescue",
            r#"{"kernel": "r/vmlinuz", "colour": "red"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "colour",
        ),
        (
            "PUT",
            "/api/v1/hosts/52:54:00:00:00:01/next-boot",
            r#"{"profile": "disk", "when": "now"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "when",
        ),
        (
            "PUT",
            "/api/v1/hosts/52:54:00:00:00:01/next-boot",
            "{}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "profile",
        ),
        (
            "PUT",
            "/api/v1/profiles/bad",
            r#"{"kernel": "../../etc/shadow"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "profiles.bad.kernel",
        ),
        (
            "DELETE",
            "/api/v1/profiles/fedora",
            "",
            StatusCode::CONFLICT,
            "name",
        ),
    ];
    for (method, uri, body, status, field) in cases {
        let (s, b) = send(&app, method, uri, body).await;
        assert_eq!(s, status, "{method} {uri} {body}: {b}");
        assert_eq!(json_of(&b)["error"]["field"], json!(field), "{b}");
    }
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        before,
        "the file changed"
    );
    let (_, b) = call(&app, "GET", "/api/v1/hosts", None).await;
    assert_eq!(json_of(&b).as_array().unwrap().len(), 1, "memory changed");
}

#[tokio::test]
async fn next_boot_is_used_once_then_the_normal_profile_again() {
    let f = Fixture::new();
    f.write(&config().replace(
        "profile = \"fedora\"\nhostname",
        "profile = \"disk\"\nhostname",
    ));
    let app = f.app(None);
    let (s, b) = call(&app, "POST", "/api/v1/reload", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // The one-shot belongs to the machine: its script comes from the address it leased.
    let mac: Mac = "de:00:00:00:00:de".parse().unwrap();
    f.shared.leases.lock().unwrap().bind(
        &crate::leases::ClientId::from_mac(mac),
        mac,
        "10.123.0.100".parse().unwrap(),
        LeaseState::Bound,
        u64::MAX / 2,
    );
    let boot = crate::http::router(f.shared.clone()).layer(
        axum::extract::connect_info::MockConnectInfo(SocketAddr::from(([10, 123, 0, 100], 1))),
    );
    let script =
        |boot: Router| async move { call(&boot, "GET", "/ipxe/de:00:00:00:00:de", None).await.1 };

    let (s, b) = send(
        &app,
        "PUT",
        "/api/v1/hosts/de:00:00:00:00:de/next-boot",
        r#"{"profile": "nope"}"#,
    )
    .await;
    assert_eq!(
        (s, json_of(&b)["error"]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("profile"))
    );
    let (s, b) = send(
        &app,
        "PUT",
        "/api/v1/hosts/52:54:00:00:00:99/next-boot",
        r#"{"profile": "fedora"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    let (s, b) = send(
        &app,
        "PUT",
        "/api/v1/hosts/de:00:00:00:00:de/next-boot",
        r#"{"profile": "fedora"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, b) = call(
        &app,
        "GET",
        "/api/v1/hosts/de:00:00:00:00:de/next-boot",
        None,
    )
    .await;
    assert_eq!(json_of(&b)["next_boot"]["profile"], json!("fedora"));

    assert!(
        script(boot.clone()).await.contains("kernel http://"),
        "first boot: the one-shot"
    );
    assert!(
        script(boot.clone())
            .await
            .contains("boots from its local disk"),
        "second boot: normal profile"
    );
    let (_, b) = call(
        &app,
        "GET",
        "/api/v1/hosts/de:00:00:00:00:de/next-boot",
        None,
    )
    .await;
    assert_eq!(json_of(&b)["next_boot"], Value::Null);

    // DELETE cancels a pending one-shot.
    send(
        &app,
        "PUT",
        "/api/v1/hosts/de:00:00:00:00:de/next-boot",
        r#"{"profile": "fedora"}"#,
    )
    .await;
    let (s, _) = call(
        &app,
        "DELETE",
        "/api/v1/hosts/de:00:00:00:00:de/next-boot",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(script(boot.clone())
        .await
        .contains("boots from its local disk"));
    let (s, _) = call(
        &app,
        "DELETE",
        "/api/v1/hosts/de:00:00:00:00:de/next-boot",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn deleting_a_lease_frees_it_in_memory_and_in_the_store() {
    let f = Fixture::new();
    let state = f.dir.path().join("state");
    let mac: Mac = "de:00:00:00:00:de".parse().unwrap();
    let id = crate::leases::ClientId::from_mac(mac);
    let lease = {
        let mut t = f.shared.leases.lock().unwrap();
        t.bind(
            &id,
            mac,
            "10.123.0.100".parse().unwrap(),
            LeaseState::Bound,
            u64::MAX / 2,
        );
        t.take_changes()
    };
    crate::store::LeaseStore::open(&state)
        .unwrap()
        .commit(&lease)
        .unwrap();
    let app = f.app(None);
    let (s, _) = call(&app, "DELETE", "/api/v1/leases/de:00:00:00:00:de", None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "no commit task yet");
    let stop = tokio_util::sync::CancellationToken::new();
    let store = crate::store::LeaseStore::open(&state).unwrap();
    let (commits, _task) = crate::dhcp::start_commits(store, f.shared.clone(), stop.clone());
    f.shared.commits.set(commits).unwrap();
    let (s, b) = call(&app, "DELETE", "/api/v1/leases/de:00:00:00:00:de", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(json_of(&b)["deleted"]["ip"], json!("10.123.0.100"));
    let (_, b) = call(&app, "GET", "/api/v1/leases", None).await;
    assert_eq!(json_of(&b), json!([]));
    assert!(
        crate::store::LeaseStore::open(&state)
            .unwrap()
            .load()
            .unwrap()
            .is_empty(),
        "still in the store"
    );
    let (s, _) = call(&app, "DELETE", "/api/v1/leases/de:00:00:00:00:de", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn events_endpoint_returns_the_timeline() {
    let f = Fixture::new();
    let mac: Mac = "de:00:00:00:00:de".parse().unwrap();
    f.shared.events.record_at(
        crate::events::Tier::Host,
        mac,
        crate::events::EventKind::DhcpDiscover,
        json!({"arch": "bios"}),
        1,
    );
    f.shared.events.record_at(
        crate::events::Tier::Host,
        mac,
        crate::events::EventKind::TftpDone,
        json!({"file": "undionly.kpxe", "bytes": 70000, "duration_ms": 12}),
        2,
    );
    let app = f.app(None);
    let (s, b) = call(
        &app,
        "GET",
        "/api/v1/machines/DE-00-00-00-00-DE/events",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        json_of(&b),
        json!({"mac": "de:00:00:00:00:de", "events": [
            {"at_ms": 1, "kind": "dhcp_discover", "arch": "bios"},
            {"at_ms": 2, "kind": "tftp_done", "file": "undionly.kpxe", "bytes": 70000, "duration_ms": 12}
        ]})
    );
    let (s, b) = call(&app, "GET", "/api/v1/machines/x/events", None).await;
    assert_eq!(
        (s, json_of(&b)["error"]["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("mac"))
    );
}

#[tokio::test]
async fn openapi_document_covers_every_endpoint_the_router_serves() {
    let f = Fixture::new();
    let app = f.app(None);
    let (s, b) = call(&app, "GET", "/api/v1/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    let doc = json_of(&b);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let endpoints = [
        ("get", "/healthz"),
        ("get", "/api/v1/status"),
        ("get", "/metrics"),
        ("get", "/api/v1/hosts"),
        ("get", "/api/v1/hosts/{mac}"),
        ("put", "/api/v1/hosts/{mac}"),
        ("delete", "/api/v1/hosts/{mac}"),
        ("get", "/api/v1/hosts/{mac}/next-boot"),
        ("put", "/api/v1/hosts/{mac}/next-boot"),
        ("delete", "/api/v1/hosts/{mac}/next-boot"),
        ("get", "/api/v1/profiles"),
        ("get", "/api/v1/profiles/{name}"),
        ("put", "/api/v1/profiles/{name}"),
        ("delete", "/api/v1/profiles/{name}"),
        ("get", "/api/v1/machines/{mac}/events"),
        ("get", "/api/v1/leases"),
        ("delete", "/api/v1/leases/{mac}"),
        ("post", "/api/v1/reload"),
    ];
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(
        documented,
        endpoints.len(),
        "the document and this list disagree: {}",
        doc["paths"]
    );
    for (method, path) in endpoints {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is not documented"
        );
        // And the router really serves it: anything but "no such route" or "wrong method".
        let uri = path
            .replace("{mac}", "de:00:00:00:00:de")
            .replace("{name}", "disk");
        let (s, b) = send(&app, &method.to_uppercase(), &uri, "{}").await;
        let unrouted = s == StatusCode::METHOD_NOT_ALLOWED
            || (s == StatusCode::NOT_FOUND && b.contains("no such endpoint"));
        assert!(
            !unrouted,
            "{method} {uri} is documented but not served: {s} {b}"
        );
    }
    assert!(doc["components"]["schemas"]["ErrorView"].is_object());
}

#[test]
fn connections_from_the_boot_network_to_other_addresses_are_refused() {
    use crate::admin::crosses_from_boot_network as crosses;
    let boot = ["10.123.0.0/24".parse().unwrap()];
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    // A VM on br1 that routed the pod IP through net1.
    assert!(crosses(ip("10.128.0.10"), ip("10.123.0.150"), &boot));
    assert!(crosses(
        ip("::ffff:10.128.0.10"),
        ip("::ffff:10.123.0.150"),
        &boot
    ));
    // The kubelet's probes and the Service, from the pod network.
    assert!(!crosses(ip("10.128.0.10"), ip("10.128.0.1"), &boot));
    // pxed's own address on the boot network, asked from the boot network (token-guarded).
    assert!(!crosses(ip("10.123.0.1"), ip("10.123.0.150"), &boot));
    // Loopback (port-forward, pxed health).
    assert!(!crosses(ip("127.0.0.1"), ip("127.0.0.1"), &boot));
}

/// `json_body` finds unknown keys by reading a body's keys with every value null. That finds
/// them all only while every field of a body type accepts null, so each type is checked
/// against the fields its OpenAPI schema lists.
#[test]
fn every_body_field_accepts_null_so_json_body_sees_every_unknown_key() {
    fn all_null<T: serde::de::DeserializeOwned>(doc: &Value, schema: &str) {
        let fields = doc["components"]["schemas"][schema]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("no schema {schema}"));
        assert!(!fields.is_empty(), "{schema} lists no fields");
        let nulls: serde_json::Map<String, Value> =
            fields.keys().map(|k| (k.clone(), Value::Null)).collect();
        if let Err(e) = serde_json::from_value::<T>(Value::Object(nulls)) {
            panic!("{schema}: a field does not accept null ({e}); make it an Option");
        }
    }
    let doc = super::openapi::openapi_json();
    all_null::<crate::edit::HostBody>(&doc, "HostBody");
    all_null::<crate::edit::ProfileBody>(&doc, "ProfileBody");
    all_null::<super::writes::NextBootBody>(&doc, "NextBootBody");
}
