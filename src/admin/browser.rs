//! Refusing what a web browser could be tricked into sending. The admin API listens on
//! loopback without a token by default, and any page a local browser opens can send requests
//! there: through DNS rebinding (a name of the attacker's that resolves to 127.0.0.1) or as
//! a cross-origin "simple" request (a `text/plain` POST needs no CORS preflight). So:
//!
//! - the `Host` header must be `localhost`, the address the connection came in on, or a
//!   name in `[admin] allowed_hosts` (a rebinding page carries its own name), unless the
//!   request carries the valid bearer token, which no browser attaches cross-origin (an
//!   in-cluster client may then use the Service's name);
//! - a request with a foreign `Origin` (or `Sec-Fetch-Site: cross-site`/`same-site`) is
//!   refused, and so is every CORS preflight (`OPTIONS`): pxed grants no cross-origin access;
//! - every write (any method but GET and HEAD) must say `Content-Type: application/json`,
//!   which no browser sends cross-origin without a preflight.

use std::net::{IpAddr, SocketAddr};

use axum::http::{header, HeaderMap, Method, StatusCode};

use crate::metrics::Refusal;

/// Why a request was refused, with what the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    /// For the counters.
    pub(crate) why: Refusal,
    pub(crate) status: StatusCode,
    /// Stable error code.
    pub(crate) code: &'static str,
    pub(crate) message: &'static str,
    /// The header at fault.
    pub(crate) field: &'static str,
}

/// Checks one request. `local` is the address the connection came in on (unknown for
/// requests built in-process, where only loopback literals and names are accepted). Pure.
pub(crate) fn check(
    method: &Method,
    headers: &HeaderMap,
    local: Option<SocketAddr>,
    allowed_hosts: &[String],
    authenticated: bool,
) -> Result<(), Refused> {
    if method == Method::OPTIONS {
        return Err(Refused {
            why: Refusal::AdminOrigin,
            status: StatusCode::FORBIDDEN,
            code: "cors_refused",
            message: "pxed's admin API allows no cross-origin requests",
            field: "Origin",
        });
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !authenticated && !host_allowed(host, local, allowed_hosts) {
        return Err(Refused {
            why: Refusal::AdminHost,
            status: StatusCode::MISDIRECTED_REQUEST,
            code: "host_not_allowed",
            message: "the Host header names neither this server nor an [admin] allowed_hosts entry",
            field: "Host",
        });
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.to_ascii_lowercase());
    let foreign_origin = origin.is_some_and(|o| !same_origin(o, host));
    let foreign_site = matches!(fetch_site.as_deref(), Some("cross-site" | "same-site"));
    if foreign_origin || foreign_site {
        return Err(Refused {
            why: Refusal::AdminOrigin,
            status: StatusCode::FORBIDDEN,
            code: "cross_origin",
            message: "requests from another origin are refused",
            field: "Origin",
        });
    }
    if method != Method::GET && method != Method::HEAD {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(Refused {
                why: Refusal::AdminContentType,
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code: "unsupported_media_type",
                message: "writes need `Content-Type: application/json`",
                field: "Content-Type",
            });
        }
    }
    Ok(())
}

/// The host part of a `Host` value: `name`, `name:port`, `[v6]:port`, or `v6` bare.
fn host_part(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match host.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

fn host_allowed(host: &str, local: Option<SocketAddr>, allowed: &[String]) -> bool {
    let name = host_part(host.trim()).trim_end_matches('.');
    if name.is_empty() {
        return false;
    }
    if let Ok(ip) = name.parse::<IpAddr>() {
        return match local {
            Some(l) => l.ip().to_canonical() == ip.to_canonical(),
            None => ip.is_loopback(),
        };
    }
    name.eq_ignore_ascii_case("localhost") || allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
}

/// Whether an `Origin` is the origin the request's own `Host` names.
fn same_origin(origin: &str, host: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false; // "null", file://, and anything else a browser may send
    };
    rest.trim_end_matches('/').eq_ignore_ascii_case(host.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    fn refused(method: Method, pairs: &[(&'static str, &'static str)]) -> Option<Refusal> {
        let local = Some(SocketAddr::from(([127, 0, 0, 1], 9091)));
        let allowed = vec!["pxed-admin.pxed.svc".to_string()];
        check(&method, &headers(pairs), local, &allowed, false)
            .err()
            .map(|r| r.why)
    }

    #[test]
    fn curl_on_loopback_is_served() {
        for host in [
            "127.0.0.1:9091",
            "localhost:9091",
            "localhost",
            "pxed-admin.pxed.svc:9091",
        ] {
            assert_eq!(refused(Method::GET, &[("host", host)]), None, "{host}");
        }
        let json = [
            ("host", "127.0.0.1:9091"),
            ("content-type", "application/json"),
        ];
        assert_eq!(refused(Method::PUT, &json), None);
        let json = [
            ("host", "localhost:9091"),
            ("content-type", "Application/JSON; charset=utf-8"),
        ];
        assert_eq!(refused(Method::POST, &json), None);
        // Same origin: the admin API's own page, were there one.
        let same = [
            ("host", "127.0.0.1:9091"),
            ("origin", "http://127.0.0.1:9091"),
        ];
        assert_eq!(refused(Method::GET, &same), None);
    }

    #[test]
    fn dns_rebinding_is_refused_by_host() {
        let rebind = [
            ("host", "attacker.example:9091"),
            ("content-type", "application/json"),
        ];
        assert_eq!(refused(Method::PUT, &rebind), Some(Refusal::AdminHost));
        assert_eq!(
            refused(Method::GET, &[]),
            Some(Refusal::AdminHost),
            "no Host"
        );
        assert_eq!(
            refused(Method::GET, &[("host", "10.1.2.3:9091")]),
            Some(Refusal::AdminHost),
            "an address this connection did not come in on"
        );
        assert_eq!(
            refused(Method::GET, &[("host", "localhost.attacker.example")]),
            Some(Refusal::AdminHost)
        );
    }

    #[test]
    fn cross_origin_requests_and_preflights_are_refused() {
        let text_post = [
            ("host", "127.0.0.1:9091"),
            ("origin", "http://attacker.example"),
            ("content-type", "application/json"),
        ];
        assert_eq!(
            refused(Method::POST, &text_post),
            Some(Refusal::AdminOrigin)
        );
        let null = [("host", "127.0.0.1:9091"), ("origin", "null")];
        assert_eq!(refused(Method::GET, &null), Some(Refusal::AdminOrigin));
        let other_port = [
            ("host", "localhost:9091"),
            ("origin", "http://localhost:3000"),
        ];
        assert_eq!(
            refused(Method::GET, &other_port),
            Some(Refusal::AdminOrigin)
        );
        let site = [("host", "127.0.0.1:9091"), ("sec-fetch-site", "cross-site")];
        assert_eq!(refused(Method::GET, &site), Some(Refusal::AdminOrigin));
        let preflight = [
            ("host", "127.0.0.1:9091"),
            ("origin", "http://127.0.0.1:9091"),
        ];
        assert_eq!(
            refused(Method::OPTIONS, &preflight),
            Some(Refusal::AdminOrigin)
        );
    }

    #[test]
    fn writes_without_json_content_type_are_refused() {
        for ct in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ] {
            let h = [("host", "127.0.0.1:9091"), ("content-type", ct)];
            assert_eq!(
                refused(Method::POST, &h),
                Some(Refusal::AdminContentType),
                "{ct}"
            );
        }
        let none = [("host", "127.0.0.1:9091")];
        assert_eq!(
            refused(Method::DELETE, &none),
            Some(Refusal::AdminContentType)
        );
        assert_eq!(refused(Method::GET, &none), None, "reads need none");
    }

    #[test]
    fn a_request_with_the_token_may_name_any_host_but_nothing_else_changes() {
        let local = Some(SocketAddr::from(([10, 128, 0, 9], 9091)));
        let svc = headers(&[("host", "pxed-admin.other-namespace.svc:9091")]);
        assert!(check(&Method::GET, &svc, local, &[], false).is_err());
        assert!(check(&Method::GET, &svc, local, &[], true).is_ok());
        let foreign = headers(&[("host", "x:9091"), ("origin", "http://attacker.example")]);
        assert!(check(&Method::GET, &foreign, local, &[], true).is_err());
        let text = headers(&[("host", "x:9091"), ("content-type", "text/plain")]);
        assert!(check(&Method::POST, &text, local, &[], true).is_err());
    }

    #[test]
    fn host_parts() {
        assert_eq!(host_part("a.b:80"), "a.b");
        assert_eq!(host_part("[::1]:9091"), "::1");
        assert_eq!(host_part("::1"), "::1");
        assert_eq!(host_part("localhost"), "localhost");
        let v6 = Some(SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], 9091)));
        assert!(host_allowed("[::1]:9091", v6, &[]));
    }
}
