//! TFTP: a read-only server over [`session::Session`]. The listener only parses requests;
//! each transfer runs in its own task with its own socket (its TID), so transfers never wait
//! on each other, and opening a file happens inside that task, not under a shared lock.

pub mod packet;
pub mod session;

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::bootfs::{resolve_in, PathError};
use crate::state::Shared;
use packet::{code, Packet};
use session::{Event, Limits, Send, Session, Status};

/// Serves TFTP read requests on `socket` until `cancel` fires; running transfers are
/// cancelled with it.
pub async fn serve(
    socket: UdpSocket,
    interface: String,
    server: Ipv4Addr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    let tracker = TaskTracker::new();
    let mut buf = vec![0u8; 1500];
    loop {
        let (len, peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    warn!(error = %e, "tftp receive failed");
                    continue;
                }
            },
        };
        match packet::parse(&buf[..len]) {
            Ok(Packet::Rrq {
                filename,
                mode,
                options,
            }) => {
                let shared = shared.clone();
                let cancel = cancel.clone();
                let local = Local {
                    interface: interface.clone(),
                    server,
                };
                tracker.spawn(async move {
                    transfer(peer, local, filename, mode, options, shared, cancel).await;
                });
            }
            Ok(Packet::Wrq { filename }) => {
                warn!(%peer, file = %filename, "tftp write refused");
                let _ = socket
                    .send_to(&packet::error(code::ACCESS, "pxed is read-only"), peer)
                    .await;
            }
            Ok(other) => debug!(%peer, packet = ?other, "tftp packet outside a transfer ignored"),
            Err(e) => warn!(%peer, len, error = %e, "dropping malformed tftp packet"),
        }
    }
    tracker.close();
    tracker.wait().await;
}

/// Where a transfer's own socket is bound: the listener's interface and pxed's address on it.
struct Local {
    /// The interface the request came in on.
    interface: String,
    /// pxed's address on it (the transfer's source address).
    server: Ipv4Addr,
}

async fn transfer(
    peer: SocketAddr,
    at: Local,
    filename: String,
    mode: String,
    options: Vec<(String, String)>,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    let cfg = shared.config();
    let machine = match peer {
        SocketAddr::V4(v4) => shared.mac_of(*v4.ip()),
        SocketAddr::V6(_) => None,
    };
    let mac = machine.map(|m| m.to_string()).unwrap_or_default();
    let record = |kind: &'static str, detail: serde_json::Value| {
        if let Some(m) = machine {
            shared.events.record(m, kind, detail);
        }
    };
    let local = SocketAddr::from((at.server, 0));
    let sock = match crate::net::udp_on_interface(&at.interface, local) {
        Ok(s) => s,
        Err(e) => {
            warn!(%peer, error = %e, "cannot open tftp transfer socket");
            return;
        }
    };
    if let Err(e) = sock.connect(peer).await {
        warn!(%peer, error = %e, "cannot connect tftp transfer socket");
        return;
    }
    let refuse = |code: u16, message: String| {
        let sock = &sock;
        async move {
            let _ = sock.send(&packet::error(code, &message)).await;
        }
    };
    if mode != "octet" && mode != "netascii" {
        refuse(code::ILLEGAL, format!("unsupported mode {mode}")).await;
        return;
    }
    let path = match resolve_in(&cfg.server.boot_dir, &filename) {
        Ok(p) => p,
        Err(e) => {
            crate::metrics::inc(&shared.counters.tftp_failed);
            record(
                "tftp_error",
                serde_json::json!({"file": filename, "error": e.to_string()}),
            );
            warn!(%peer, %mac, file = %filename, error = %e, "tftp request refused");
            let c = match e {
                PathError::NotFound(_) => code::NOT_FOUND,
                _ => code::ACCESS,
            };
            refuse(c, e.to_string()).await;
            return;
        }
    };
    let file = match std::fs::File::open(&path).and_then(|f| f.metadata().map(|m| (f, m.len()))) {
        Ok(x) => x,
        Err(e) => {
            warn!(%peer, %mac, file = %filename, error = %e, "tftp open failed");
            refuse(code::ACCESS, "cannot open file".into()).await;
            return;
        }
    };
    let (file, size) = file;
    let limits = Limits {
        max_blksize: cfg.tftp.max_blksize,
        max_windowsize: cfg.tftp.max_windowsize,
        ..Limits::default()
    };
    let params = session::negotiate(&options, size, &limits);
    info!(
        %peer, %mac, file = %filename, size, blksize = params.blksize,
        windowsize = params.windowsize, "tftp transfer started"
    );
    record(
        "tftp_start",
        serde_json::json!({"file": filename, "size": size, "blksize": params.blksize, "windowsize": params.windowsize}),
    );
    let started = Instant::now();
    let mut session = Session::new(size, params, limits.max_retries);
    let mut out = vec![0u8; 4 + usize::from(session.params().blksize)];
    let mut inbuf = vec![0u8; 1024];
    let mut step = session.start();
    loop {
        for s in &step.send {
            let sent = match s {
                Send::Oack(o) => sock.send(&packet::oack(o)).await,
                Send::Error { code, message } => sock.send(&packet::error(*code, message)).await,
                Send::Data { block, offset, len } => {
                    packet::data_header(&mut out, *block);
                    // Reads come from the page cache and are short, so they run inline.
                    if let Err(e) = file.read_exact_at(&mut out[4..4 + len], *offset) {
                        warn!(%peer, file = %filename, error = %e, "tftp read failed");
                        refuse(code::UNDEFINED, "read error".into()).await;
                        return;
                    }
                    sock.send(&out[..4 + len]).await
                }
            };
            if let Err(e) = sent {
                warn!(%peer, %mac, file = %filename, error = %e, "tftp send failed");
                return;
            }
        }
        let elapsed = started.elapsed();
        match step.status {
            Status::Running => {}
            Status::Done => {
                crate::metrics::inc(&shared.counters.tftp_done);
                crate::metrics::add(&shared.counters.tftp_bytes, size);
                record(
                    "tftp_done",
                    serde_json::json!({"file": filename, "bytes": size, "duration_ms": elapsed.as_millis() as u64}),
                );
                let secs = elapsed.as_secs_f64().max(1e-6);
                info!(
                    %peer, %mac, file = %filename, bytes = size,
                    duration_ms = elapsed.as_millis() as u64,
                    mbytes_per_s = format!("{:.1}", size as f64 / secs / 1e6),
                    "tftp transfer finished"
                );
                return;
            }
            Status::AbortedByClient { code, message } => {
                crate::metrics::inc(&shared.counters.tftp_aborted);
                record(
                    "tftp_aborted",
                    serde_json::json!({"file": filename, "code": code, "message": message, "bytes": session.bytes_acked()}),
                );
                info!(
                    %peer, %mac, file = %filename, code, message = %message,
                    bytes = session.bytes_acked(), "tftp transfer aborted by client"
                );
                return;
            }
            Status::TimedOut => {
                crate::metrics::inc(&shared.counters.tftp_failed);
                record(
                    "tftp_error",
                    serde_json::json!({"file": filename, "error": "timed out", "bytes": session.bytes_acked()}),
                );
                warn!(%peer, %mac, file = %filename, bytes = session.bytes_acked(), "tftp transfer timed out");
                return;
            }
        }
        let event = loop {
            let r = tokio::select! {
                _ = cancel.cancelled() => return,
                r = tokio::time::timeout(session.timeout(), sock.recv(&mut inbuf)) => r,
            };
            match r {
                Err(_) => break Event::Timeout,
                Ok(Err(e)) => {
                    // ICMP port unreachable: the client is gone.
                    info!(%peer, %mac, file = %filename, error = %e, "tftp client went away");
                    return;
                }
                Ok(Ok(n)) => match packet::parse(&inbuf[..n]) {
                    Ok(Packet::Ack(b)) => break Event::Ack(b),
                    Ok(Packet::Error { code, message }) => break Event::Error { code, message },
                    Ok(other) => {
                        debug!(%peer, packet = ?other, "unexpected tftp packet in transfer")
                    }
                    Err(e) => warn!(%peer, error = %e, "dropping malformed tftp packet"),
                },
            }
        };
        step = session.handle(event);
    }
}
