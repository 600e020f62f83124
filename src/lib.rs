//! pxed: a standalone PXE server. One async daemon that answers DHCP, serves the iPXE first
//! stage over TFTP, and serves per-machine iPXE scripts, kernels and initrds over HTTP.
//!
//! # Module map
//!
//! Pure cores decide; thin async shells do the IO. The table follows one boot: DHCP, then
//! TFTP, then HTTP and the profile it serves, then the state behind them, the admin API that
//! changes it, and the wiring.
//!
//! | module | concept | kind |
//! |---|---|---|
//! | `dhcp::client` | who sent a request: MAC, lease key, client kind (iPXE, PXE, HTTP Boot, plain), and the one table of architectures (option 93) | pure |
//! | `dhcp::decide` | address mode: one request in, at most one reply out; a handler per message type | pure |
//! | `dhcp::proxy` | proxyDHCP: boot information without addresses (ports 67 and 4011) | pure |
//! | `dhcp::reply` | the one reply builder both modes share: `Decision` (`Reply` or `NoReply` with a `Reason`), header, boot options, boot file, destination, encoding | pure |
//! | `dhcp::wire` | decoding datagrams without ever panicking (option lengths checked first) | pure |
//! | `dhcp` | the DHCP socket loops: decode, decide, commit leases (one bounded queue, rolled back on failure), send per RFC 2131 §4.1 | shell |
//! | `tftp::packet` | TFTP wire format | pure |
//! | `tftp::session` | one read transfer as a state machine (options, windows, retries) | pure |
//! | `tftp` | the TFTP listener and one task per admitted transfer | shell |
//! | `http` | scripts at `/ipxe/{mac}` and static files (axum + tower-http) | shell |
//! | `conn` | the HTTP accept loop for boot files and the admin API: slots, header/idle/stall timeouts; hyper for the admin API, `conn/http1` for boot files (own HTTP/1.1 framing, bodies by `sendfile`) | shell |
//! | `plan` | which profile a machine boots now (host, `[defaults]`, one-shot, who asks), and what serving it records | shared |
//! | `profiles` | boot profiles and the iPXE scripts they render to | pure |
//! | `grub` | the GRUB configs the signed chains load (Secure Boot shim → GRUB, arm64 GRUB): names GRUB asks for, rendering | pure |
//! | `bootfs` | resolving client paths inside `boot_dir`, never outside | fs |
//! | `leases` | the address pool and its leases; records the store writes each decision needs | pure |
//! | `store` | durable leases: SQLite, WAL, `synchronous=FULL`, one transaction per batch | disk |
//! | `nextboot` | one-shot boots per MAC, spent when the script is served; saved in `state_dir` | fs |
//! | `events` | per-machine boot timelines, bounded in count and bytes, hosts and `[defaults]` clients in separate tiers | pure |
//! | `admin` | the admin API (JSON, bearer token off loopback): reads, reload, metrics; `admin/browser` (Host, Origin, Content-Type and preflight checks); `admin/writes` (file edits, next-boot, lease deletion); `admin/views` (one type per answer); `admin/openapi` (the document, from those types and the request types) | shell |
//! | `edit` | admin edits of the TOML file with toml_edit (comments survive); `edit/atomic` (replace a file behind its symlink, keeping owner and mode) | pure (+ write) |
//! | [`config`] | the TOML file: `raw` (as written), `validate` (into `Config`), `checks` (single values, private files under `boot_dir`, missing files), `locate` (line and key of an error) | pure (+ `load`) |
//! | `reload` | re-read, validate and swap the config; refuse a bad file | shell |
//! | `watch` | reload when the config file's contents change (directory watch, hashed) | shell |
//! | `state` | what the listeners share: live config, leases, client facts | shared |
//! | `admission` | who gets a TFTP session or HTTP connection: caps per client and in total, eviction of the oldest idle or unanswered one (`Admission`); the listener's shared `Slots` and each task's self-freeing `Slot`; `admission/fair` (`FairQueue`: connections waiting for a slot, round-robin by client) | pure (+ lock, cancel tokens) |
//! | `limits` | the file-descriptor budget every limit fits in, log throttles, a token bucket | pure (+ `setrlimit`) |
//! | `metrics` | counters bumped by the listeners; Prometheus text | pure |
//! | [`logfmt`] | text logs request data cannot forge: every control character of a record escaped but its final newline | pure |
//! | `net` | sockets bound to one interface; ARP entries for DHCP unicast | OS |
//! | `mac` | MAC addresses as written by operators and sent by firmware | pure |
//! | `abilities` | what this process may do (capabilities, low ports, config writes) and what pxed does without each; reported at start-up and at `/api/v1/status` | pure (+ probe) |
//! | [`daemon`] | `bind` binds every listener (port 0 in tests), `serve` opens the state, runs them, and stops them within 2 s | wiring |
//!
//! Unit tests share `testkit` (base config tables, DHCP requests as bytes) and have one
//! layout, which docs/ARCHITECTURE.md ("Tests") gives and `tests/architecture.rs` holds.
//!
//! The binary (`src/main.rs`) is the CLI: `pxed serve` and `pxed check`.
//! See docs/ARCHITECTURE.md for the flow of one boot.

// Functions stay short enough to read at once: clippy.toml sets 60 lines (blank lines and
// comments not counted), with no exemptions. Tests are checked by the non-test build's rule
// only.
#![deny(clippy::too_many_lines)]
// Items are crate-private unless `main.rs` needs them, so dead code shows; every public item
// says what it is for.
#![warn(unreachable_pub, missing_docs)]
#![cfg_attr(test, allow(clippy::too_many_lines))]

mod abilities;
mod admin;
mod admission;
mod bootfs;
pub mod config;
mod conn;
pub mod daemon;
mod dhcp;
mod edit;
mod events;
mod grub;
mod http;
mod leases;
mod limits;
pub mod logfmt;
mod mac;
mod metrics;
mod net;
mod nextboot;
mod plan;
mod profiles;
mod reload;
mod state;
mod store;
#[cfg(test)]
mod testkit;
mod tftp;
mod watch;
