//! The `pxed` command line.

// The same 60-line rule as the library (see `src/lib.rs`).
#![deny(clippy::too_many_lines)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// A standalone PXE server: DHCP, TFTP and HTTP in one daemon.
#[derive(Parser, Debug)]
#[command(name = "pxed", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve DHCP (UDP 67), TFTP (UDP 69) and HTTP on the configured interface until
    /// SIGINT or SIGTERM.
    Serve {
        /// The TOML config file.
        #[arg(short, long, env = "PXED_CONFIG")]
        config: PathBuf,
        /// Log format.
        #[arg(long, env = "PXED_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        /// Addresses and ports of the admin API, comma-separated, overriding `[admin] listen`
        /// (in a pod: `$(POD_IP):9091,127.0.0.1:9091`, the pod IP from the downward API for
        /// the Service and probes and loopback for port-forward; never the boot network).
        #[arg(long, env = "PXED_ADMIN_LISTEN", value_delimiter = ',', value_parser = pxed::daemon::parse_listen)]
        admin_listen: Vec<std::net::SocketAddr>,
    },
    /// Exit 0 if a running pxed's admin API answers /healthz (for container health checks).
    Health {
        /// The health URL [default: /healthz at PXED_ADMIN_LISTEN, else 127.0.0.1:9091].
        #[arg(long, env = "PXED_HEALTH_URL")]
        url: Option<String>,
    },
    /// Validate a config file, print a summary of profiles, hosts and pool, and exit
    /// non-zero if it is invalid.
    Check {
        /// The TOML config file.
        #[arg(short, long, env = "PXED_CONFIG")]
        config: PathBuf,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Logs go to stderr from a thread of their own: callers queue each formatted line, and the
/// writer drains the queue in large writes, so a storm's per-packet lines cost a copy, not a
/// syscall each. A full queue drops lines (counted in `pxed_log_lines_dropped_total`) rather
/// than slow the listeners. The guard flushes what is queued when `main` returns.
fn init_logging(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PXED_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(pxed::logfmt::QUEUED_LINES)
        .thread_name("pxed-log")
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    pxed::logfmt::count_dropped(writer.error_counter());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        // Request data (HTTP paths, TFTP names and errors) reaches `%` fields unescaped.
        LogFormat::Text => builder
            .with_writer(pxed::logfmt::EscapeControls::new(writer))
            .with_ansi(false)
            .init(),
        // serde_json escapes control characters itself.
        LogFormat::Json => builder.with_writer(writer).json().init(),
    }
    guard
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => match pxed::config::load(&config) {
            Ok((c, warnings)) => {
                println!("{}: valid", config.display());
                print!("{}", pxed::daemon::summary(&c));
                for w in warnings {
                    let line = w.line.map(|l| format!(":{l}")).unwrap_or_default();
                    println!(
                        "warning: {}{line}: key `{}`: {}",
                        config.display(),
                        w.key,
                        w.message
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Health { url } => match health(&url.unwrap_or_else(default_health_url)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("unhealthy: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Serve {
            config,
            log_format,
            admin_listen,
        } => {
            let _log = init_logging(log_format);
            match serve(
                config,
                pxed::daemon::Options {
                    admin_listen,
                    ..Default::default()
                },
            ) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "pxed failed");
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn serve(path: PathBuf, options: pxed::daemon::Options) -> anyhow::Result<()> {
    let (config, warnings) = pxed::config::load(&path)?;
    for w in warnings {
        warn!(file = %path.display(), line = w.line, key = %w.key, message = %w.message, "config warning");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting tokio runtime")?;
    rt.block_on(async move {
        let cancel = CancellationToken::new();
        let signals = cancel.clone();
        let reload_to = pxed::daemon::ReloadHook::default();
        let hook = reload_to.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
            ) else {
                warn!("cannot install signal handlers");
                return;
            };
            loop {
                tokio::select! {
                    _ = int.recv() => { tracing::info!(signal = "SIGINT", "stop requested"); break; }
                    _ = term.recv() => { tracing::info!(signal = "SIGTERM", "stop requested"); break; }
                    _ = hup.recv() => hook.fire("SIGHUP"),
                }
            }
            signals.cancel();
        });
        pxed::daemon::run(config, options, cancel, reload_to).await
    })
}

/// `/healthz` where `pxed serve` put the admin API: the first of PXED_ADMIN_LISTEN (an
/// unspecified address such as 0.0.0.0 is reached through loopback), else the default.
fn default_health_url() -> String {
    let addr = std::env::var("PXED_ADMIN_LISTEN")
        .ok()
        .and_then(|a| pxed::daemon::parse_listen(a.split(',').next()?).ok())
        .map(|mut a| {
            if a.ip().is_unspecified() {
                a.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            a
        })
        .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 9091)));
    format!("http://{addr}/healthz")
}

/// A minimal HTTP/1.0 GET, so the container image needs no curl.
fn health(url: &str) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").context("only http:// URLs")?;
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let addr: std::net::SocketAddr = host
        .parse()
        .with_context(|| format!("`{host}` is not IP:port"))?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    let status = reply.split_whitespace().nth(1).unwrap_or("");
    anyhow::ensure!(status == "200", "{url} answered {status}");
    Ok(())
}
