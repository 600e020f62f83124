use super::*;
use axum::extract::connect_info::MockConnectInfo;
use http_body_util::BodyExt;

struct Fixture {
    _dir: tempfile::TempDir,
    shared: Arc<Shared>,
    app: Router,
}

fn fixture(extra: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let boot = dir.path().join("boot");
    std::fs::create_dir_all(boot.join("sub")).unwrap();
    std::fs::write(boot.join("vmlinuz"), b"0123456789abcdef").unwrap();
    std::fs::write(boot.join("sub/initrd.gz"), b"initrd").unwrap();
    std::fs::write(
        boot.join("custom.ipxe"),
        "#!ipxe\necho hello {{ hostname }} on {{ arch }}\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("secret"), b"secret").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret"), boot.join("link")).unwrap();
    let text = format!(
        r#"{}{}
[profiles.fedora]
kernel = "vmlinuz"
initrd = ["sub/initrd.gz"]
cmdline = "console=ttyS0 host={{{{hostname}}}}"
[profiles.disk]
action = "local"
[profiles.custom]
script = "custom.ipxe"
[hosts."de:00:00:00:00:de"]
profile = "fedora"
hostname = "vm-de"
[hosts."de:00:00:00:00:01"]
profile = "disk"
[hosts."de:00:00:00:00:02"]
profile = "custom"
hostname = "c2"
{extra}"#,
        crate::testkit::server(&boot, std::path::Path::new("/var/lib/pxed")),
        crate::testkit::DHCP,
    );
    let cfg = crate::testkit::config(&text);
    let shared = Shared::new(cfg);
    // Both: the handlers extract ConnectInfo (the mock), and the request log reads the
    // extension the listener inserts (the Extension layer).
    let peer = SocketAddr::from(([10, 123, 0, 100], 5000));
    let app = router(shared.clone())
        .layer(MockConnectInfo(peer))
        .layer(axum::Extension(ConnectInfo(peer)));
    Fixture {
        _dir: dir,
        shared,
        app,
    }
}

async fn get_with(
    app: &Router,
    uri: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, axum::http::HeaderMap, String) {
    let mut req = Request::builder().uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

async fn get(app: &Router, uri: &str) -> (StatusCode, String) {
    let (s, _, b) = get_with(app, uri, &[]).await;
    (s, b)
}

#[tokio::test]
async fn kernel_profile_script_names_the_initrd() {
    let f = fixture("");
    let (status, body) = get(&f.app, "/ipxe/DE-00-00-00-00-DE").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("#!ipxe\n"), "{body}");
    assert!(
        body.contains("kernel http://10.123.0.1:8080/vmlinuz initrd=initrd.gz console=ttyS0 host=vm-de || goto failed\n"),
        "{body}"
    );
    assert!(body.contains("initrd http://10.123.0.1:8080/sub/initrd.gz || goto failed\n"));
}

#[tokio::test]
async fn local_and_template_profiles() {
    let f = fixture("");
    let (status, body) = get(&f.app, "/ipxe/de:00:00:00:00:01").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("exit 0"));
    assert!(!body.contains("kernel"));
    let (status, body) = get(&f.app, "/ipxe/de:00:00:00:00:02").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "#!ipxe\necho hello c2 on unknown\n");
}

#[tokio::test]
async fn unknown_mac_gets_404_text_or_the_default() {
    let f = fixture("");
    let (status, body) = get(&f.app, "/ipxe/52:54:00:00:00:99").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body.contains("no boot profile for MAC 52:54:00:00:00:99"),
        "{body}"
    );
    let (status, _) = get(&f.app, "/ipxe/not-a-mac").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let f = fixture("[defaults]\nprofile = \"disk\"\n");
    let (status, body) = get(&f.app, "/ipxe/52:54:00:00:00:99").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("boots from its local disk"));
}

#[tokio::test]
async fn static_files_with_range_and_etag() {
    let f = fixture("");
    let (status, headers, body) = get_with(&f.app, "/vmlinuz", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "0123456789abcdef");
    assert_eq!(headers[header::ACCEPT_RANGES], "bytes");
    let etag = headers
        .get(header::ETAG)
        .expect("etag")
        .to_str()
        .unwrap()
        .to_string();

    let (status, headers, body) = get_with(&f.app, "/vmlinuz", &[("range", "bytes=4-7")]).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, "4567");
    assert_eq!(headers[header::CONTENT_RANGE], "bytes 4-7/16");

    let (status, _, body) = get_with(&f.app, "/vmlinuz", &[("if-none-match", &etag)]).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert_eq!(body, "");

    let (status, body) = get(&f.app, "/sub/initrd.gz").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "initrd"));
    let (status, _) = get(&f.app, "/sub%2Finitrd.gz").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn traversal_and_symlinks_out_are_refused() {
    let f = fixture("");
    for uri in [
        "/../secret",
        "/sub/../../secret",
        "/%2e%2e/secret",
        "/sub/%2e%2e%2f%2e%2e%2fsecret",
        "/link",
    ] {
        let (status, body) = get(&f.app, uri).await;
        assert!(
            status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
            "{uri}: {status}"
        );
        assert!(
            !body.contains("secret\n") && body != "secret",
            "{uri} leaked: {body}"
        );
    }
    let (status, _) = get(&f.app, "/link").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = get(&f.app, "/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get(&f.app, "/sub").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn writes_are_refused() {
    let f = fixture("");
    let req = Request::builder()
        .method("PUT")
        .uri("/vmlinuz")
        .body(Body::from("x"))
        .unwrap();
    let resp = f.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    let (_, body) = get(&f.app, "/vmlinuz").await;
    assert_eq!(body, "0123456789abcdef");
}

#[tokio::test]
async fn file_responses_name_the_range_the_engine_sends() {
    let f = fixture("");
    let send = |method: &'static str, range: Option<&'static str>| {
        let app = f.app.clone();
        async move {
            let mut req = Request::builder().method(method).uri("/vmlinuz");
            if let Some(r) = range {
                req = req.header("range", r);
            }
            let resp = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
            resp.extensions()
                .get::<crate::conn::SendFile>()
                .map(|s| (s.offset, s.len))
        }
    };
    // vmlinuz is "0123456789abcdef": 16 bytes.
    assert_eq!(send("GET", None).await, Some((0, 16)));
    assert_eq!(send("GET", Some("bytes=2-5")).await, Some((2, 4)));
    assert_eq!(send("GET", Some("bytes=-3")).await, Some((13, 3)));
    // No body to send: HEAD, and a range past the end (416).
    assert_eq!(send("HEAD", None).await, None);
    assert_eq!(send("GET", Some("bytes=100-200")).await, None);
}

#[tokio::test]
async fn a_one_shot_boot_completes_with_the_one_shots_last_initrd() {
    let f = fixture("");
    // de:00:00:00:00:01 boots its disk; a one-shot of the kernel profile is pending, and
    // the script comes from the address leased to it, so the one-shot is served.
    let mac: Mac = "de:00:00:00:00:01".parse().unwrap();
    f.shared.leases.lock().unwrap().bind(
        &crate::leases::ClientId::from_mac(mac),
        mac,
        "10.123.0.100".parse().unwrap(),
        crate::leases::State::Bound,
        u64::MAX / 2,
    );
    f.shared.next_boots.set(mac, "fedora".into()).unwrap();
    let (s, script) = get(&f.app, "/ipxe/de:00:00:00:00:01").await;
    assert_eq!(s, StatusCode::OK);
    assert!(script.contains("initrd=initrd.gz"), "{script}");
    let completed = || {
        f.shared
            .counters
            .boots_completed
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    assert_eq!(completed(), 0);
    assert_eq!(get(&f.app, "/vmlinuz").await.0, StatusCode::OK);
    assert_eq!(completed(), 0, "the kernel does not complete a boot");
    assert_eq!(get(&f.app, "/sub/initrd.gz").await.0, StatusCode::OK);
    assert_eq!(
        completed(),
        1,
        "the one-shot's last initrd completes its boot"
    );
    // The next boot is the host's own profile again: nothing to complete over HTTP.
    assert!(get(&f.app, "/ipxe/de:00:00:00:00:01")
        .await
        .1
        .contains("local disk"));
    assert_eq!(get(&f.app, "/sub/initrd.gz").await.0, StatusCode::OK);
    assert_eq!(completed(), 1);
}
