//! What ships: the systemd unit and the Kubernetes manifests. The container image itself is
//! built with podman and run in tests/container.rs.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn require(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "this test needs `{tool}` on PATH; run scripts/install-deps.sh (tests/run does)"
    );
}

/// `systemd-analyze verify` checks that ExecStart exists, so the unit is verified with the
/// binary this test run built standing in for /usr/local/bin/pxed; nothing else changes.
fn unit_for_analysis(dir: &Path) -> PathBuf {
    let unit = std::fs::read_to_string(repo().join("deploy/systemd/pxed.service")).unwrap();
    let path = dir.join("pxed.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/pxed", env!("CARGO_BIN_EXE_pxed")),
    )
    .unwrap();
    path
}

#[test]
fn systemd_unit_verifies_and_is_hardened() {
    require("systemd-analyze");
    let unit = std::fs::read_to_string(repo().join("deploy/systemd/pxed.service")).unwrap();
    for directive in [
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/pxed /etc/pxed",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_NET_RAW CAP_NET_ADMIN",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "ExecStart=/usr/local/bin/pxed serve --config /etc/pxed/pxed.toml",
    ] {
        assert!(
            unit.lines().any(|l| l == directive),
            "pxed.service lacks `{directive}`"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let path = unit_for_analysis(dir.path());
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-analyze verify: {err}"
    );

    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for pxed.service: ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score in:\n{text}"));
    println!("systemd-analyze security exposure: {score}");
    assert!(score <= 2.0, "exposure {score} is above 2.0:\n{text}");
}

/// Both Kubernetes variants parse, validate against the bundled Kubernetes schemas, and agree
/// with each other and with pxed's config (deploy/kubernetes/check.py).
#[test]
fn kubernetes_manifests_validate_and_agree() {
    let python = repo().join("target/pyvenv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: tests/run creates it (python3 -m venv target/pyvenv && target/pyvenv/bin/pip install kubernetes-validate pyyaml)",
        python.display()
    );
    let out = Command::new(&python)
        .arg(repo().join("deploy/kubernetes/check.py"))
        .arg(repo())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("all deploy/kubernetes checks passed"));
}

/// The build context leaves out what is large and generated (target/ alone is gigabytes), and
/// keeps everything the Dockerfile's build stage reads.
#[test]
fn dockerignore_keeps_build_outputs_out_of_the_context() {
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let excluded = |path: &str| {
        patterns.iter().any(|p| {
            let p = p.trim_start_matches('/').trim_end_matches('/');
            path == p || path.starts_with(&format!("{p}/"))
        })
    };
    for generated in ["target", "boot-images/out", ".git", "fuzz/target"] {
        assert!(excluded(generated), ".dockerignore lets {generated}/ in");
    }
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "src/main.rs",
        "scripts/image.sh",
        "boot-images/fetch-ipxe.sh",
        "config/kubevirt.toml",
    ] {
        assert!(!excluded(needed), ".dockerignore leaves out {needed}");
        assert!(repo().join(needed).exists(), "{needed} is gone");
    }
}
