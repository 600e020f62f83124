//! Test harness: throwaway network namespaces, the real pxed binary inside them, and QEMU.
//!
//! Every namespace is named `pxedt-<pid>-<n>`, is removed on drop, and leftovers of dead test
//! processes are removed before a new one is made. Nothing touches the root namespace.
//! Missing root or tools make a test fail with a message saying what to install.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub mod vm;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Fails the test unless it runs as root with `tools` on PATH.
pub fn require(tools: &[&str]) {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test needs root (network namespaces): run it as root, e.g. via tests/run"
    );
    for t in tools {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(t).is_file()))
            .unwrap_or(false);
        assert!(
            found,
            "this test needs `{t}` on PATH; run scripts/install-deps.sh (tests/run does)"
        );
    }
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    out
}

fn must(cmd: &mut Command) {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace that is deleted (with every process in it) on drop.
pub struct Netns {
    /// Its name.
    pub name: String,
}

impl Netns {
    /// Creates a uniquely named namespace with `lo` up.
    pub fn new() -> Netns {
        clean_leftovers();
        let name = format!(
            "pxedt-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        must(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NAME args...`, which must succeed.
    pub fn ip(&self, args: &[&str]) {
        must(Command::new("ip").arg("-n").arg(&self.name).args(args));
    }

    /// `sysctl -w SETTING` inside the namespace (its net.* settings are its own), which must
    /// succeed.
    pub fn sysctl(&self, setting: &str) {
        must(self.cmd("sysctl").args(["-qw", setting]));
    }

    /// A command that runs inside the namespace.
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        delete_netns(&self.name);
    }
}

fn delete_netns(name: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", name]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
    }
    let _ = Command::new("ip").args(["netns", "delete", name]).status();
}

/// Removes `pxedt-<pid>-*` namespaces whose test process is gone.
fn clean_leftovers() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("pxedt-") else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        if !pid.is_empty() && !Path::new(&format!("/proc/{pid}")).exists() {
            delete_netns(name);
        }
    }
}

/// The usual lab: a server namespace whose bridge `br1` has 10.123.0.1/24.
pub struct Lab {
    /// Where pxed runs and where VMs' taps sit.
    pub server: Netns,
    /// Scratch space: config, logs, VM files.
    pub dir: tempfile::TempDir,
    taps: usize,
}

pub const SERVER_IP: &str = "10.123.0.1";

impl Lab {
    pub fn new() -> Lab {
        let lab = Lab::bare();
        lab.server
            .ip(&["addr", "add", "10.123.0.1/24", "dev", "br1"]);
        lab
    }

    /// A lab whose bridge has no address: a node's br1, with the server elsewhere (a pod).
    pub fn bare() -> Lab {
        let server = Netns::new();
        server.ip(&["link", "add", "br1", "type", "bridge"]);
        server.ip(&["link", "set", "br1", "up"]);
        Lab {
            server,
            dir: tempfile::tempdir().unwrap(),
            taps: 0,
        }
    }

    /// A client namespace joined to br1 by a veth whose client end (`vc`) has `mac` and, if
    /// given, a static address.
    pub fn client(&mut self, mac: &str, addr: Option<&str>) -> Netns {
        self.client_on("br1", mac, addr)
    }

    /// Like [`Lab::client`], on another bridge of the server namespace.
    pub fn client_on(&mut self, bridge: &str, mac: &str, addr: Option<&str>) -> Netns {
        let c = Netns::new();
        let vs = format!("vs{}", self.taps);
        self.taps += 1;
        self.server.ip(&[
            "link", "add", &vs, "type", "veth", "peer", "name", "vc", "netns", &c.name,
        ]);
        self.server
            .ip(&["link", "set", &vs, "master", bridge, "up"]);
        c.ip(&["link", "set", "vc", "address", mac]);
        c.ip(&["link", "set", "vc", "up"]);
        if let Some(a) = addr {
            c.ip(&["addr", "add", a, "dev", "vc"]);
        }
        c
    }

    /// A tap on br1 for a VM; returns its name.
    pub fn tap(&mut self) -> String {
        let name = format!("tap{}", self.taps);
        self.taps += 1;
        self.server
            .ip(&["tuntap", "add", "dev", &name, "mode", "tap"]);
        self.server
            .ip(&["link", "set", &name, "master", "br1", "up"]);
        name
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// The standard config header for a lab, serving `boot_dir`.
pub fn config(boot_dir: &Path, state_dir: &Path, rest: &str) -> String {
    format!(
        r#"[server]
interface = "br1"
address = "10.123.0.1"
boot_dir = "{}"
state_dir = "{}"

[dhcp]
subnet = "10.123.0.0/24"
range = ["10.123.0.100", "10.123.0.200"]
router = "10.123.0.1"
lease_time = "1h"

[http]
listen = "0.0.0.0:8080"

{rest}"#,
        boot_dir.display(),
        state_dir.display()
    )
}

/// The real pxed binary, running in a namespace. Stopped with SIGTERM on drop.
pub struct Pxed {
    child: Option<Child>,
    /// Its stderr (the log).
    pub log_path: PathBuf,
}

/// The binary under test: this build's, or `PXED_TEST_BIN` (to run a suite against another
/// build, e.g. to show that a test fails without its fix).
pub fn pxed_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("PXED_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_pxed").to_string())
    })
}

impl Pxed {
    /// Writes `config` into the lab dir, starts `pxed serve` in the server namespace, and
    /// waits for the three readiness lines.
    pub fn start(lab: &Lab, config: &str) -> Pxed {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let cfg = lab.path(&format!("pxed-{n}.toml"));
        std::fs::write(&cfg, config).unwrap();
        let mut cmd = lab.server.cmd(pxed_bin());
        cmd.args(["serve", "--config"]).arg(&cfg);
        Pxed::launch(lab, cmd, &format!("pxed-{n}"))
    }

    /// Starts `cmd` (pxed itself, or a wrapper that ends up exec'ing or running it: setpriv,
    /// podman) with its stderr in `lab`'s `<name>.log`, and waits for the readiness lines.
    pub fn launch(lab: &Lab, mut cmd: Command, name: &str) -> Pxed {
        let mut p = Pxed::spawn(lab, &mut cmd, name);
        // The http line comes last, after every interface's dhcp and tftp lines.
        p.wait_for_log(
            |l| {
                l.contains("dhcp listener ready")
                    && l.contains("tftp listener ready")
                    && l.contains("http listener ready")
            },
            Duration::from_secs(60),
            "the listener ready lines",
        );
        p
    }

    /// Starts `cmd` like [`Pxed::launch`] without waiting for anything.
    pub fn spawn(lab: &Lab, cmd: &mut Command, name: &str) -> Pxed {
        let log_path = lab.path(&format!("{name}.log"));
        let log = std::fs::File::create(&log_path).unwrap();
        Pxed::spawn_to(cmd, log.into(), log_path)
    }

    /// Starts `cmd` with its stderr going to `stderr` (a pipe the test holds) instead of a
    /// log file; [`Pxed::log`] is then empty.
    pub fn spawn_with_stderr(lab: &Lab, cmd: &mut Command, stderr: Stdio) -> Pxed {
        Pxed::spawn_to(cmd, stderr, lab.path("stderr-is-a-pipe"))
    }

    /// Starts `cmd` with its stderr to `stderr`, read back from `log_path`.
    fn spawn_to(cmd: &mut Command, stderr: Stdio, log_path: PathBuf) -> Pxed {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        Pxed {
            child: Some(child),
            log_path,
        }
    }

    /// Waits for the process to exit by itself; returns its status and log.
    pub fn wait_exit(&mut self, limit: Duration) -> (std::process::ExitStatus, String) {
        let mut child = self.child.take().expect("running");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return (status, self.log());
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!("still running after {limit:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// pxed's process id (`ip netns exec` and the wrappers tests use exec it).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Polls the log until `pred` holds; fails with the log if it doesn't within `limit`.
    pub fn wait_for_log(
        &mut self,
        pred: impl Fn(&str) -> bool,
        limit: Duration,
        what: &str,
    ) -> String {
        let start = Instant::now();
        loop {
            let l = self.log();
            if pred(&l) {
                return l;
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!("pxed exited ({status}) while waiting for {what}:\n{l}");
                }
            }
            assert!(
                start.elapsed() < limit,
                "timed out waiting for {what}; pxed log:\n{l}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends a signal (e.g. `-HUP`) and returns at once.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let _ = Command::new("kill").args([signal, &pid]).status();
    }

    /// The config file pxed was started with.
    pub fn config_path(&self) -> PathBuf {
        self.log_path.with_extension("toml")
    }

    /// Kills pxed with SIGKILL, as a crash would, and waits for it.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-KILL", &child.id().to_string()])
            .status();
        let _ = child.wait();
    }

    /// Sends SIGTERM and returns how long pxed took to exit, and its status.
    pub fn stop(&mut self) -> (Duration, std::process::ExitStatus) {
        self.stop_with("-TERM")
    }

    /// Sends `signal` (e.g. `-INT`) and returns how long pxed took to exit, and its status.
    pub fn stop_with(&mut self, signal: &str) -> (Duration, std::process::ExitStatus) {
        let mut child = self.child.take().expect("running");
        // `ip netns exec` execs pxed, so the child pid is pxed's.
        let start = Instant::now();
        let _ = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return (start.elapsed(), status);
            }
            if start.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                panic!("pxed did not exit within 10 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Pxed {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            std::thread::sleep(Duration::from_millis(100));
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A directory laid out as the kubelet lays out a ConfigMap or Secret volume:
/// `NAME -> ..data/NAME`, `..data -> ..<timestamp>`, the files inside `..<timestamp>/`.
pub struct ConfigMapDir {
    /// The mount point.
    pub dir: PathBuf,
    /// The current `..<timestamp>` directory's name.
    current: String,
    /// Makes timestamp directory names unique within a second.
    serial: usize,
}

impl ConfigMapDir {
    /// Creates `dir` holding `files` (name, contents), as the kubelet does at pod start.
    pub fn new(dir: &Path, files: &[(&str, &str)]) -> ConfigMapDir {
        std::fs::create_dir_all(dir).unwrap();
        let mut cm = ConfigMapDir {
            dir: dir.to_path_buf(),
            current: String::new(),
            serial: 0,
        };
        cm.update(files);
        for (name, _) in files {
            std::os::unix::fs::symlink(format!("..data/{name}"), dir.join(name)).unwrap();
        }
        cm
    }

    /// Replaces the contents the way the kubelet's atomic writer does
    /// (pkg/volume/util/atomic_writer.go): (1) a new `..<timestamp>` directory, (2) the
    /// payload written into it, (3) a symlink `..data_tmp` to it, (4) `..data_tmp` renamed
    /// over `..data`, (5) the old timestamp directory removed. No event ever names a file
    /// of the payload at the mount point.
    pub fn update(&mut self, files: &[(&str, &str)]) {
        self.serial += 1;
        let ts = format!("..2026_11_25_00_00_00.{:09}", self.serial);
        let ts_dir = self.dir.join(&ts);
        std::fs::create_dir(&ts_dir).unwrap();
        for (name, text) in files {
            std::fs::write(ts_dir.join(name), text).unwrap();
        }
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&ts, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
        let old = std::mem::replace(&mut self.current, ts);
        if !old.is_empty() {
            std::fs::remove_dir_all(self.dir.join(old)).unwrap();
        }
    }

    /// The path of one file as the container sees it (through the symlinks).
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// `pxed check --config <file>`, run to completion.
pub fn pxed_check(file: &Path) -> Output {
    Command::new(pxed_bin())
        .args(["check", "--config"])
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run pxed check: {e}"))
}

/// Runs a command to completion with a hard time limit; returns (success, stdout, stderr).
/// Output is drained while it runs, so a chatty command cannot block on a full pipe.
pub fn run_limited(cmd: &mut Command, limit: Duration) -> (bool, String, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            r.read_to_string(&mut s).ok();
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    (status.is_some_and(|s| s.success()), out, err)
}

/// The path of a script under tests/tools (probe.py, hostile.py, firmware_dhcp.py).
pub fn tool(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/tools")
        .join(name)
        .display()
        .to_string()
}

/// GET of an admin API path on loopback in the server namespace, which must succeed.
pub fn admin_get(lab: &Lab, path: &str) -> String {
    let (ok, out, err) = run_limited(
        lab.server
            .cmd("curl")
            .args(["-fsS", &format!("http://127.0.0.1:9091{path}")]),
        Duration::from_secs(10),
    );
    assert!(ok, "GET {path} failed: {err}");
    out
}

/// Asserts that each of `steps` occurs in `log`, in that order.
pub fn in_order(log: &str, steps: &[&str]) {
    let pos = |needle: &str| {
        log.find(needle)
            .unwrap_or_else(|| panic!("pxed log lacks {needle}:\n{log}"))
    };
    for w in steps.windows(2) {
        assert!(
            pos(w[0]) < pos(w[1]),
            "{} came after {}:\n{log}",
            w[0],
            w[1]
        );
    }
}

/// Runs busybox udhcpc once in `ns`; returns the `bound` line its script printed.
pub fn udhcpc(lab: &Lab, ns: &Netns, extra: &[&str]) -> Option<String> {
    let script = lab.path("udhcpc.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\n[ \"$1\" = bound ] && echo \"BOUND ip=$ip subnet=$subnet router=$router serverid=$serverid lease=$lease siaddr=$siaddr boot_file=$boot_file hostname=$hostname\"\nexit 0\n",
    )
    .unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(&script)
        .status()
        .unwrap();
    let mut cmd = ns.cmd("busybox");
    cmd.args([
        "udhcpc", "-i", "vc", "-f", "-q", "-n", "-t", "3", "-T", "1", "-s",
    ])
    .arg(&script)
    .args(extra);
    let (ok, out, err) = run_limited(&mut cmd, Duration::from_secs(20));
    if !ok {
        eprintln!("udhcpc failed: {out}{err}");
        return None;
    }
    out.lines()
        .find(|l| l.starts_with("BOUND"))
        .map(str::to_string)
}

/// Boot payload built by boot-images/ (tests/run builds it). Fails clearly when missing.
pub fn boot_fixture() -> PathBuf {
    let dir = std::env::var_os("PXED_BOOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("boot-images/out"));
    for f in ["undionly.kpxe", "ipxe.efi", "vmlinuz", "initrd.gz"] {
        assert!(
            dir.join(f).is_file(),
            "{} is missing: run boot-images/fetch-ipxe.sh and boot-images/build-demo.sh (tests/run does)",
            dir.join(f).display()
        );
    }
    dir.canonicalize().unwrap()
}
