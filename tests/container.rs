//! The shipped container image, run the way the Deployment runs it, boots VMs.
//!
//! The image is the one the repo's Dockerfile describes, built by podman
//! (`scripts/build-image.sh`, which tests/run calls). The network is laid out as Multus lays
//! it out: a "node" namespace holds the bridge br1 and the VMs' taps; a "pod" namespace
//! holds `net1` (a veth whose other end is on br1) with pxed's address and `eth0` with the
//! pod IP. The container joins the pod namespace with the pod's security settings: an
//! arbitrary UID with GID 0 (OpenShift's restricted-v2), every capability dropped,
//! no_new_privs, a read-only root filesystem, `net.ipv4.ip_unprivileged_port_start=0`, the
//! config in a ConfigMap-shaped read-only mount, the token in a Secret-shaped one, and the
//! state on a writable volume owned by the fsGroup.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::vm::*;
use common::*;

/// What `scripts/build-image.sh` tags.
const IMAGE: &str = "localhost/pxed:test";
/// An OpenShift-style UID from a namespace's range, and the fsGroup it assigns.
const POD_UID: &str = "1000650000";
/// The pod network address the admin API binds (downward API `status.podIP`).
const POD_IP: &str = "10.128.0.10";
const TOKEN: &str = "9f1c0c6b3c1e4f7d8a2b5e6f7a8b9c0d";

/// The repo file, as text.
fn repo_file(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel))
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn podman() -> Command {
    let mut c = Command::new("podman");
    // crun refuses this machine's hybrid cgroups; runc works (shared/notes/container-lab.md).
    c.args(["--runtime", "runc"]);
    c
}

/// Removes the container on drop, even when the test failed half-way.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman()
            .args(["rm", "-f", "-t", "2", &self.0])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// The settings this test reproduces must be the Deployment's own: if the manifest changes,
/// this test has to change with it.
fn deployment_has_the_settings_reproduced_here() {
    let d = repo_file("deploy/kubernetes/base/deployment.yaml");
    for needle in [
        "runAsNonRoot: true",
        "allowPrivilegeEscalation: false",
        "readOnlyRootFilesystem: true",
        "drop: [\"ALL\"]",
        "name: net.ipv4.ip_unprivileged_port_start",
        "mountPath: /etc/pxed\n",
        "mountPath: /etc/pxed-token",
        "mountPath: /var/lib/pxed",
        "name: PXED_ADMIN_LISTEN",
        "fieldPath: status.podIP",
    ] {
        assert!(
            d.contains(needle),
            "deploy/kubernetes/base/deployment.yaml no longer has `{needle}`: update tests/container.rs"
        );
    }
    assert!(
        !d.contains("runAsUser") && !d.contains("fsGroup"),
        "the base Deployment fixes a UID or fsGroup, which restricted-v2 refuses"
    );
}

/// `podman run` of the image as `name` in the pod's namespace: attached (its stderr is the
/// log), removed when it exits, with the Deployment's admin addresses and the limits podman
/// needs here. The caller adds identity, capabilities and volumes.
fn podman_run(name: &str, pod: &Netns) -> Command {
    let mut run = podman();
    // No systemd here to run podman's health timers; `pxed health` is run by hand instead.
    run.args([
        "run",
        "--rm",
        "--pull=never",
        "--no-healthcheck",
        "--name",
        name,
    ]);
    run.arg(format!("--network=ns:/run/netns/{}", pod.name));
    run.args([
        "--ulimit",
        "nofile=4096:4096",
        "--ulimit",
        "nproc=4096:4096",
    ]);
    run.args(["-e", &format!("PXED_ADMIN_LISTEN={}", admin_listen())]);
    run
}

/// The Deployment's `PXED_ADMIN_LISTEN`, with `$(POD_IP)` filled in as the kubelet does.
fn admin_listen() -> String {
    let d = repo_file("deploy/kubernetes/base/deployment.yaml");
    let value = d
        .split("name: PXED_ADMIN_LISTEN")
        .nth(1)
        .and_then(|rest| rest.lines().nth(1))
        .and_then(|l| l.trim().strip_prefix("value: "))
        .expect("PXED_ADMIN_LISTEN's value in deployment.yaml");
    value.trim_matches('"').replace("$(POD_IP)", POD_IP)
}

#[test]
fn the_image_boots_bios_uefi_and_secure_boot_vms_under_the_pods_settings_and_follows_configmap_updates(
) {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    require(&[
        "ip",
        "podman",
        "qemu-system-x86_64",
        "curl",
        "sysctl",
        "busybox",
    ]);
    deployment_has_the_settings_reproduced_here();
    let fixture = boot_fixture();
    let exists = podman()
        .args(["image", "exists", IMAGE])
        .status()
        .expect("podman");
    assert!(
        exists.success(),
        "image {IMAGE} is missing: run scripts/build-image.sh (tests/run does)"
    );

    // The node: br1 and the VMs. The pod: net1 on br1, eth0 on the pod network.
    let mut lab = Lab::bare();
    let pod = Netns::new();
    lab.server.ip(&[
        "link", "add", "vpod", "type", "veth", "peer", "name", "net1", "netns", &pod.name,
    ]);
    lab.server
        .ip(&["link", "set", "vpod", "master", "br1", "up"]);
    pod.ip(&["addr", "add", "10.123.0.1/24", "dev", "net1"]);
    pod.ip(&["link", "set", "net1", "up"]);
    // The pod network; only its address matters here (this kernel has no dummy links).
    pod.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth0peer",
    ]);
    pod.ip(&["link", "set", "eth0peer", "up"]);
    pod.ip(&["addr", "add", &format!("{POD_IP}/23"), "dev", "eth0"]);
    pod.ip(&["link", "set", "eth0", "up"]);
    // The Deployment's one sysctl, set in the pod's namespace as the kubelet does.
    pod.sysctl("net.ipv4.ip_unprivileged_port_start=0");

    // The ConfigMap: the shipped config, plus a demo profile and two hosts.
    let base = repo_file("config/kubevirt.toml");
    let cfg = |rev: u32| {
        format!(
            "{base}\n[profiles.demo]\nkernel = \"demo/vmlinuz\"\ninitrd = [\"demo/initrd.gz\"]\ncmdline = \"console=ttyS0 panic=1 pxed.test=container rev={rev} host={{{{ hostname }}}}\"\n\n[hosts.\"de:00:00:00:00:de\"]\nprofile = \"demo\"\nhostname = \"pxe-vm\"\n\n[hosts.\"de:00:00:00:00:ef\"]\nprofile = \"demo\"\nhostname = \"pxe-vm-uefi\"\n\n[hosts.\"de:00:00:00:00:5b\"]\nprofile = \"demo\"\nhostname = \"pxe-vm-sb\"\nsecure_boot = true\n"
        )
    };
    let mut cm = ConfigMapDir::new(&lab.path("configmap"), &[("pxed.toml", &cfg(1))]);
    let secret = ConfigMapDir::new(&lab.path("secret"), &[("token", TOKEN)]);
    // The PVC: owned by the fsGroup, group-writable with setgid, as the kubelet makes it.
    let state = lab.path("state");
    std::fs::create_dir(&state).unwrap();
    let sh = |script: &str| {
        let ok = Command::new("sh").args(["-c", script]).status().unwrap();
        assert!(ok.success(), "{script}");
    };
    sh(&format!(
        "chown 0:{POD_UID} {0} && chmod 2770 {0}",
        state.display()
    ));
    // Kernel and initrd come from a volume mounted under boot_dir; iPXE, shim and GRUB come
    // with the image.
    let demo = lab.path("demo");
    std::fs::create_dir(&demo).unwrap();
    for f in ["vmlinuz", "initrd.gz"] {
        std::fs::copy(fixture.join(f), demo.join(f)).unwrap();
    }
    sh(&format!("chmod -R a+rX {}", lab.dir.path().display()));

    let name = format!("pxedt-{}", std::process::id());
    let _ = podman().args(["rm", "-f", &name]).output();
    let container = Container(name.clone());
    let mut run = podman_run(&name, &pod);
    run.args(["--user", &format!("{POD_UID}:0"), "--group-add", POD_UID]);
    run.args(["--cap-drop", "ALL", "--security-opt", "no-new-privileges"]);
    // readOnlyRootFilesystem: no tmpfs that a pod would not have either.
    run.args(["--read-only", "--read-only-tmpfs=false"]);
    run.args(["-e", "PXED_LOG_FORMAT=json"]);
    let vol = |host: &Path, at: &str| format!("{}:{at}", host.display());
    run.args(["-v", &vol(&cm.dir, "/etc/pxed:ro")]);
    run.args(["-v", &vol(&secret.dir, "/etc/pxed-token:ro")]);
    run.args(["-v", &vol(&state, "/var/lib/pxed")]);
    run.args(["-v", &vol(&demo, "/srv/pxed/boot/demo:ro")]);
    run.arg(IMAGE);
    let started = Instant::now();
    let mut pxed = Pxed::launch(&lab, run, "container");
    println!(
        "container ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Inside: the pod's identity and no capabilities at all.
    let (ok, id, err) = run_limited(
        podman().args([
            "exec",
            &name,
            "sh",
            "-c",
            "id -u; id -g; grep ^Cap /proc/1/status",
        ]),
        Duration::from_secs(20),
    );
    assert!(ok, "{err}");
    assert!(id.starts_with(&format!("{POD_UID}\n0\n")), "{id}");
    for set in ["CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert!(
            id.contains(&format!("{set}:\t0000000000000000")),
            "{set} is not empty:\n{id}"
        );
    }
    // The start-up report names what is missing; the status endpoint says the same.
    let log = pxed.log();
    assert!(
        log.contains("\"capability\":\"CAP_NET_ADMIN\"")
            && log.contains("DHCP replies to clients without an address are broadcast"),
        "{log}"
    );
    let curl = |url: &str, token: bool| {
        let mut c = pod.cmd("curl");
        c.args(["-sS", "-m", "5", "-w", "\n%{http_code}"]);
        if token {
            c.args(["-H", &format!("Authorization: Bearer {TOKEN}")]);
        }
        run_limited(c.arg(url), Duration::from_secs(10)).1
    };
    let status = curl(&format!("http://{POD_IP}:9091/api/v1/status"), true);
    assert!(
        status.contains("\"missing\":[\"dhcp_unicast\",\"config_writes\"]")
            && status.ends_with("200"),
        "{status}"
    );
    assert!(curl(&format!("http://{POD_IP}:9091/api/v1/hosts"), false).ends_with("401"));
    // Loopback too, for kubectl port-forward, and with the same token.
    assert!(curl("http://127.0.0.1:9091/api/v1/hosts", true).ends_with("200"));
    assert!(curl("http://127.0.0.1:9091/api/v1/hosts", false).ends_with("401"));
    // The admin API is on the pod IP only, never on net1 where the VMs are.
    assert!(
        curl("http://10.123.0.1:9091/healthz", false).ends_with("000"),
        "the admin API answers on net1"
    );
    // A neighbour on br1 that routes the pod IP through net1 reaches the socket (Linux takes
    // packets for any local address on any interface), and pxed refuses the connection.
    let neighbour = lab.client("52:54:00:00:66:66", Some("10.123.0.150/24"));
    neighbour.ip(&["route", "add", &format!("{POD_IP}/32"), "via", "10.123.0.1"]);
    let (ok, out, _) = run_limited(
        neighbour
            .cmd("curl")
            .args(["-sS", "-m", "5", &format!("http://{POD_IP}:9091/healthz")]),
        Duration::from_secs(10),
    );
    assert!(
        !ok && !out.contains("ok"),
        "the admin API answered a br1 neighbour: {out}"
    );
    pxed.wait_for_log(
        |l| l.contains("admin connection from the boot network refused"),
        Duration::from_secs(5),
        "the refusal of the neighbour's connection",
    );
    // The image's HEALTHCHECK command finds it through PXED_ADMIN_LISTEN.
    let (ok, _, err) = run_limited(
        podman().args(["exec", &name, "pxed", "health"]),
        Duration::from_secs(20),
    );
    assert!(ok, "pxed health failed in the container: {err}");

    // BIOS, UEFI and Secure Boot VMs boot from the container: UEFI fetches the image's
    // ipxe.efi by TFTP, Secure Boot its signed shim and GRUB.
    let mut boot_vm = |fw: Firmware, mac: &str, rev: u32| {
        let tap = lab.tap();
        let b = boot_at(
            &lab.server,
            &tap,
            lab.dir.path(),
            fw,
            mac,
            None,
            &[KERNEL_MARKER],
            Duration::from_secs(300),
        );
        let Some(line) = b.console.lines().find(|l| l.contains(KERNEL_MARKER)) else {
            panic!("{fw:?} VM {mac} did not boot; console:\n{}", b.console);
        };
        if fw == Firmware::SecureBoot {
            assert!(
                b.console.contains("Secure boot enabled"),
                "not under Secure Boot:\n{}",
                b.console
            );
        }
        assert!(
            line.contains(&format!("pxed.test=container rev={rev} ")),
            "{fw:?}: {line}"
        );
        println!(
            "{fw:?} VM boot time from the container: {:.1} s",
            b.took.as_secs_f64()
        );
    };
    boot_vm(Firmware::Bios, "de:00:00:00:00:de", 1);
    boot_vm(Firmware::Uefi, "de:00:00:00:00:ef", 1);
    boot_vm(Firmware::SecureBoot, "de:00:00:00:00:5b", 1);
    let log = pxed.log();
    assert!(
        log.contains("\"file\":\"ipxe.efi\"") && log.contains("\"to\":\"255.255.255.255:68\""),
        "no broadcast reply or no ipxe.efi download:\n{log}"
    );
    assert!(
        log.contains("\"file\":\"shimx64.efi\"") && log.contains("grub config served"),
        "no shim download or no GRUB config:\n{log}"
    );

    // The kubelet updates the ConfigMap; the next boot uses the new cmdline, no restart.
    cm.update(&[("pxed.toml", &cfg(2))]);
    pxed.wait_for_log(
        |l| l.contains("config reloaded"),
        Duration::from_secs(5),
        "a reload after the ConfigMap update",
    );
    boot_vm(Firmware::Bios, "de:00:00:00:00:de", 2);

    // SIGTERM (what the kubelet sends) stops it promptly.
    let (took, _) = pxed.stop();
    assert!(took < Duration::from_secs(5), "stop took {took:?}");
    drop(container);

    // README's `docker run --user 0:0 --cap-drop ALL --cap-add NET_BIND_SERVICE --cap-add
    // NET_ADMIN`: ports from the capability (the sysctl is back at its default), and DHCP
    // replies unicast after an ARP entry.
    pod.sysctl("net.ipv4.ip_unprivileged_port_start=1024");
    let root = Container(format!("{name}-root"));
    let mut run = podman_run(&root.0, &pod);
    run.args(["--user", "0:0", "--cap-drop", "ALL"]);
    run.args(["--cap-add", "NET_BIND_SERVICE", "--cap-add", "NET_ADMIN"]);
    run.args(["-v", &vol(&cm.dir, "/etc/pxed:ro")]);
    run.args(["-v", &vol(&secret.dir, "/etc/pxed-token:ro")]);
    // Its own state: root without CAP_DAC_OVERRIDE cannot write the first run's leases.db.
    let root_state = lab.path("state-root");
    std::fs::create_dir(&root_state).unwrap();
    run.args(["-v", &vol(&root_state, "/var/lib/pxed")]);
    run.arg(IMAGE);
    let pxed = Pxed::launch(&lab, run, "container-root");
    let status = curl(&format!("http://{POD_IP}:9091/api/v1/status"), true);
    assert!(
        status.contains("\"missing\":[\"config_writes\"]"),
        "{status}"
    );
    let resolv_before = std::fs::read("/etc/resolv.conf").ok();
    let client = lab.client("de:00:00:00:00:de", None);
    let (ok, out, err) = run_limited(
        client
            .cmd("busybox")
            // `-s /bin/true`: udhcpc's default script would rewrite the host's
            // /etc/resolv.conf, which network namespaces do not isolate.
            .args([
                "udhcpc",
                "-i",
                "vc",
                "-f",
                "-q",
                "-n",
                "-t",
                "3",
                "-T",
                "1",
                "-s",
                "/bin/true",
            ]),
        Duration::from_secs(20),
    );
    assert!(
        ok,
        "no lease from the root container: {out}{err}\n{}",
        pxed.log()
    );
    assert_eq!(
        std::fs::read("/etc/resolv.conf").ok(),
        resolv_before,
        "the DHCP client changed the host's /etc/resolv.conf"
    );
    let log = pxed.log();
    assert!(
        log.lines().any(|l| l.contains("dhcp reply sent")
            && l.contains("\"to\":\"10.123.0.")
            && l.contains(":68\"")),
        "no unicast reply:\n{log}"
    );
    drop(pxed);
}
