//! Validation of the limits and policies that keep pxed serving on a hostile boot network:
//! TFTP sessions, HTTP and admin connections, script access, DHCP lease caps and rates.

use std::time::Duration;

use super::checks::valid_hostname;
use super::raw::{RawAdmin, RawHttp, RawTftp};
use super::validate::Validator;
use super::{Admin, ConfigError, ConnLimits, Http, ScriptAccess, Tftp};

impl Validator<'_> {
    /// A humantime duration at `key`, between `min` and `max`.
    pub(super) fn duration(
        &self,
        key: &[&str],
        text: &str,
        min: Duration,
        max: Duration,
    ) -> Result<Duration, ConfigError> {
        let d = humantime::parse_duration(text)
            .map_err(|e| self.err(key, format!("`{text}`: {e} (try \"10s\")")))?;
        if d < min || d > max {
            return Err(self.err(
                key,
                format!(
                    "must be between {} and {}",
                    humantime::format_duration(min),
                    humantime::format_duration(max)
                ),
            ));
        }
        Ok(d)
    }

    /// A count at `key` of at least 1.
    fn count(&self, key: &[&str], n: u32) -> Result<usize, ConfigError> {
        if n == 0 {
            return Err(self.err(key, "must be at least 1"));
        }
        Ok(n as usize)
    }

    pub(super) fn tftp(&self, t: RawTftp) -> Result<Tftp, ConfigError> {
        if t.max_blksize < 512 || t.max_blksize > 65464 {
            return Err(self.err(&["tftp", "max_blksize"], "must be between 512 and 65464"));
        }
        if t.max_windowsize == 0 {
            return Err(self.err(&["tftp", "max_windowsize"], "must be at least 1"));
        }
        let max_sessions = self.count(&["tftp", "max_sessions"], t.max_sessions)?;
        let per_client = self.count(
            &["tftp", "max_sessions_per_client"],
            t.max_sessions_per_client,
        )?;
        if !(1..=255).contains(&t.max_timeout) {
            return Err(self.err(
                &["tftp", "max_timeout"],
                "must be between 1 and 255 (seconds)",
            ));
        }
        let unanswered_timeout = self.duration(
            &["tftp", "unanswered_timeout"],
            &t.unanswered_timeout,
            Duration::from_millis(100),
            Duration::from_secs(10),
        )?;
        if t.unanswered_retries > 10 {
            return Err(self.err(&["tftp", "unanswered_retries"], "must be at most 10"));
        }
        Ok(Tftp {
            max_blksize: t.max_blksize,
            max_windowsize: t.max_windowsize,
            max_sessions,
            max_sessions_per_client: per_client,
            max_timeout: Duration::from_secs(t.max_timeout),
            unanswered_timeout,
            unanswered_retries: t.unanswered_retries,
        })
    }

    pub(super) fn http(&self, h: RawHttp) -> Result<Http, ConfigError> {
        let script_access = match h.script_access.as_str() {
            "owner" => ScriptAccess::Owner,
            "any" => ScriptAccess::Any,
            other => {
                return Err(self.err(
                    &["http", "script_access"],
                    format!("unknown value `{other}` (\"owner\" or \"any\")"),
                ))
            }
        };
        let (sec, hour) = (Duration::from_secs(1), Duration::from_secs(3600));
        let limits = ConnLimits {
            max_connections: self.count(&["http", "max_connections"], h.max_connections)?,
            max_per_client: self.count(
                &["http", "max_connections_per_client"],
                h.max_connections_per_client,
            )?,
            header_timeout: self.duration(
                &["http", "header_timeout"],
                &h.header_timeout,
                sec,
                Duration::from_secs(60),
            )?,
            idle_timeout: self.duration(&["http", "idle_timeout"], &h.idle_timeout, sec, hour)?,
            stall_timeout: self.duration(
                &["http", "stall_timeout"],
                &h.stall_timeout,
                sec,
                hour,
            )?,
        };
        Ok(Http {
            listen: h.listen,
            limits,
            script_access,
        })
    }

    pub(super) fn admin(&self, a: RawAdmin) -> Result<Admin, ConfigError> {
        let max_connections = self.count(&["admin", "max_connections"], a.max_connections)?;
        for name in &a.allowed_hosts {
            if !valid_hostname(name) {
                return Err(self.err(
                    &["admin", "allowed_hosts"],
                    format!("`{name}` is not a host name (letters, digits, `-` and `.`)"),
                ));
            }
        }
        Ok(Admin {
            listen: a.listen,
            token_file: a.token_file,
            max_connections,
            allowed_hosts: a
                .allowed_hosts
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
        })
    }
}
