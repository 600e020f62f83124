//! Boot profiles and the iPXE scripts they render to. Pure: no IO.
//!
//! A profile says what a machine boots. pxed turns it into an iPXE script served at
//! `/ipxe/{mac}` (here), or into a GRUB config for the signed chains ([`crate::grub`]). Cmdlines, chain URLs and user templates may use `{{ var }}` placeholders;
//! the `{{ }}` syntax was chosen because iPXE itself already owns `${var}`.

use std::net::Ipv4Addr;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::mac::Mac;

/// What a profile boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Profile {
    /// Load a kernel and initrds over HTTP and boot them with a command line.
    Kernel {
        /// Kernel path relative to `boot_dir`, or an absolute `http(s)://` URL.
        kernel: String,
        /// Initrd paths (or URLs), loaded in order.
        initrd: Vec<String>,
        /// Kernel command line template; `initrd=` names are added by pxed.
        cmdline: String,
    },
    /// A user-written iPXE script template, relative to `boot_dir`.
    Script {
        /// Template path relative to `boot_dir`.
        script: String,
    },
    /// Chainload another URL (a template).
    Chain {
        /// The URL iPXE chains to.
        url: String,
    },
    /// Make iPXE exit so the firmware moves on to the next boot device (the disk).
    Local,
}

impl Profile {
    /// Short name of the profile kind, for logs and `pxed check`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Profile::Kernel { .. } => "kernel",
            Profile::Script { .. } => "script",
            Profile::Chain { .. } => "chain",
            Profile::Local => "local",
        }
    }
}

/// Values a template may refer to.
#[derive(Debug, Clone)]
pub(crate) struct Vars<'a> {
    /// The client's MAC (`{{ mac }}`, lowercase with colons).
    pub mac: Mac,
    /// The client's leased address, when pxed knows it (`{{ ip }}`).
    pub ip: Option<Ipv4Addr>,
    /// The host's configured hostname (`{{ hostname }}`).
    pub hostname: Option<&'a str>,
    /// This server's address (`{{ server }}`).
    pub server: Ipv4Addr,
    /// Base URL of pxed's boot HTTP listener, no trailing slash (`{{ http }}`).
    pub http: &'a str,
    /// Client architecture name from DHCP option 93 (`{{ arch }}`).
    pub arch: &'a str,
}

/// Names accepted inside `{{ }}`.
pub(crate) const VARIABLES: &[&str] = &["mac", "ip", "hostname", "server", "http", "arch"];

/// A template that cannot be rendered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum TemplateError {
    /// `{{ name }}` names no known variable.
    #[error("unknown template variable `{0}` (known: mac, ip, hostname, server, http, arch)")]
    UnknownVariable(String),
    /// A `{{` without its `}}`.
    #[error("unclosed `{{{{` in template")]
    Unclosed,
}

/// Checks that a template only uses known variables, without rendering it.
pub(crate) fn check_template(tpl: &str) -> Result<(), TemplateError> {
    let mut rest = tpl;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or(TemplateError::Unclosed)?;
        let name = after[..end].trim();
        if !VARIABLES.contains(&name) {
            return Err(TemplateError::UnknownVariable(name.to_string()));
        }
        rest = &after[end + 2..];
    }
    Ok(())
}

/// What a rendered value keeps as written: `[A-Za-z0-9._:/-]`, enough for every address, MAC,
/// hostname, URL and architecture name pxed substitutes. Everything else is percent-encoded,
/// so a value can never bring whitespace, `$`, `#`, `|`, `&`, `;` or a newline into the iPXE
/// script, whatever validation it passed on its way in.
const KEPT_IN_SCRIPT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'.')
    .remove(b'_')
    .remove(b':')
    .remove(b'/')
    .remove(b'-');

/// Replaces every `{{ var }}` in `tpl` with its value, percent-encoded outside
/// `[A-Za-z0-9._:/-]` (so a value stays inside the word it was written in and cannot start an
/// iPXE command, comment or `${setting}`). Unknown values (an `ip` not yet leased, a host
/// without a hostname) render as the empty string.
pub(crate) fn render_template(tpl: &str, vars: &Vars<'_>) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(tpl.len());
    let mut rest = tpl;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or(TemplateError::Unclosed)?;
        let value = match after[..end].trim() {
            "mac" => vars.mac.to_string(),
            "ip" => vars.ip.map(|ip| ip.to_string()).unwrap_or_default(),
            "hostname" => vars.hostname.unwrap_or_default().to_string(),
            "server" => vars.server.to_string(),
            "http" => vars.http.to_string(),
            "arch" => vars.arch.to_string(),
            other => return Err(TemplateError::UnknownVariable(other.to_string())),
        };
        out.extend(utf8_percent_encode(&value, KEPT_IN_SCRIPT));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `path` as a URL on pxed's HTTP listener, unless it already is a URL.
pub(crate) fn url_for(http_base: &str, path: &str) -> String {
    if is_url(path) {
        path.to_string()
    } else {
        format!("{}/{}", http_base, path.trim_start_matches('/'))
    }
}

/// Whether a profile path is an absolute HTTP(S) URL rather than a file under `boot_dir`.
pub(crate) fn is_url(path: &str) -> bool {
    path.starts_with("http://") || path.starts_with("https://")
}

/// The name iPXE gives an image it fetched: the last path segment of its URL.
fn image_name(path: &str) -> &str {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    path.rsplit('/').next().unwrap_or(path)
}

/// Renders the iPXE script for `profile`. `script_text` is the template file's contents
/// for [`Profile::Script`] (the shell reads it; this function does no IO).
pub(crate) fn render_ipxe(
    name: &str,
    profile: &Profile,
    vars: &Vars<'_>,
    script_text: Option<&str>,
) -> Result<String, TemplateError> {
    let mac = vars.mac;
    match profile {
        Profile::Kernel {
            kernel,
            initrd,
            cmdline,
        } => {
            let mut kernel_args = Vec::new();
            // The Debian iPXE build panics the kernel under UEFI unless each initrd is
            // named on the command line (see docs/ARCHITECTURE.md, "UEFI initrd=").
            for i in initrd {
                kernel_args.push(format!("initrd={}", image_name(i)));
            }
            let cmdline = render_template(cmdline, vars)?;
            if !cmdline.trim().is_empty() {
                kernel_args.push(cmdline.trim().to_string());
            }
            let mut s = format!("#!ipxe\n# pxed: profile {name} for {mac}\n");
            s.push_str(&format!(
                "echo pxed: booting profile {name} for {mac}\nkernel {} {} || goto failed\n",
                url_for(vars.http, kernel),
                kernel_args.join(" ")
            ));
            for i in initrd {
                s.push_str(&format!("initrd {} || goto failed\n", url_for(vars.http, i)));
            }
            s.push_str("boot || goto failed\n");
            s.push_str(&format!(
                ":failed\necho pxed: profile {name} failed to boot, trying the next boot device\nsleep 5\nexit 1\n"
            ));
            Ok(s)
        }
        Profile::Script { .. } => render_template(script_text.unwrap_or_default(), vars),
        Profile::Chain { url } => Ok(format!(
            "#!ipxe\n# pxed: profile {name} for {mac}\nchain {}\n",
            render_template(url, vars)?
        )),
        Profile::Local => Ok(format!(
            "#!ipxe\n# pxed: profile {name} for {mac}\necho pxed: {mac} boots from its local disk\nexit 0\n"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars<'static> {
        Vars {
            mac: "de:00:00:00:00:de".parse().unwrap(),
            ip: Some(Ipv4Addr::new(10, 123, 0, 100)),
            hostname: Some("vm1"),
            server: Ipv4Addr::new(10, 123, 0, 1),
            http: "http://10.123.0.1:8080",
            arch: "efi-x64",
        }
    }

    #[test]
    fn kernel_profile_names_every_initrd_on_the_cmdline() {
        let p = Profile::Kernel {
            kernel: "fedora/vmlinuz".into(),
            initrd: vec!["fedora/initrd.gz".into(), "extra.img".into()],
            cmdline: "console=ttyS0 ip={{ ip }} host={{hostname}} arch={{arch}}".into(),
        };
        let s = render_ipxe("fedora", &p, &vars(), None).unwrap();
        assert_eq!(
            s,
            "#!ipxe\n\
             # pxed: profile fedora for de:00:00:00:00:de\n\
             echo pxed: booting profile fedora for de:00:00:00:00:de\n\
             kernel http://10.123.0.1:8080/fedora/vmlinuz initrd=initrd.gz initrd=extra.img console=ttyS0 ip=10.123.0.100 host=vm1 arch=efi-x64 || goto failed\n\
             initrd http://10.123.0.1:8080/fedora/initrd.gz || goto failed\n\
             initrd http://10.123.0.1:8080/extra.img || goto failed\n\
             boot || goto failed\n\
             :failed\n\
             echo pxed: profile fedora failed to boot, trying the next boot device\n\
             sleep 5\n\
             exit 1\n"
        );
    }

    #[test]
    fn absolute_urls_are_kept() {
        let p = Profile::Kernel {
            kernel: "http://mirror.example/vmlinuz".into(),
            initrd: vec!["https://mirror.example/initrd.img?x=1".into()],
            cmdline: String::new(),
        };
        let s = render_ipxe("m", &p, &vars(), None).unwrap();
        assert!(
            s.contains("kernel http://mirror.example/vmlinuz initrd=initrd.img || goto failed\n")
        );
        assert!(s.contains("initrd https://mirror.example/initrd.img?x=1 || goto failed\n"));
    }

    #[test]
    fn local_profile_exits_to_the_next_boot_device() {
        let s = render_ipxe("disk", &Profile::Local, &vars(), None).unwrap();
        assert!(s.starts_with("#!ipxe\n"));
        assert!(s.ends_with("exit 0\n"));
        assert!(!s.contains("kernel"));
    }

    #[test]
    fn chain_and_script_templates_render_variables() {
        let chain = Profile::Chain {
            url: "http://other/{{mac}}?ip={{ip}}".into(),
        };
        let s = render_ipxe("c", &chain, &vars(), None).unwrap();
        assert!(s.contains("chain http://other/de:00:00:00:00:de?ip=10.123.0.100\n"));

        let script = Profile::Script {
            script: "x.ipxe".into(),
        };
        let s = render_ipxe(
            "s",
            &script,
            &vars(),
            Some("#!ipxe\necho ${net0/mac} {{ server }} {{ http }}\n"),
        )
        .unwrap();
        assert_eq!(
            s,
            "#!ipxe\necho ${net0/mac} 10.123.0.1 http://10.123.0.1:8080\n"
        );
    }

    #[test]
    fn missing_values_render_empty_and_unknown_names_fail() {
        let mut v = vars();
        v.ip = None;
        v.hostname = None;
        assert_eq!(render_template("a{{ip}}b{{hostname}}c", &v).unwrap(), "abc");
        assert_eq!(
            render_template("{{ nope }}", &v),
            Err(TemplateError::UnknownVariable("nope".into()))
        );
        assert_eq!(render_template("{{ mac", &v), Err(TemplateError::Unclosed));
        assert!(check_template("ok {{ mac }} {{arch}}").is_ok());
        assert!(check_template("{{ macc }}").is_err());
    }

    #[test]
    fn rendered_values_cannot_carry_ipxe_syntax() {
        let mut v = vars();
        v.hostname = Some("a b\n#c;d||e&&f${net0/ip}%_.:/-Z9é");
        v.arch = "x\r\tshell";
        assert_eq!(
            render_template("h={{ hostname }} {{arch}}", &v).unwrap(),
            "h=a%20b%0A%23c%3Bd%7C%7Ce%26%26f%24%7Bnet0/ip%7D%25_.:/-Z9%C3%A9 x%0D%09shell"
        );
        let chain = Profile::Chain {
            url: "http://other/{{hostname}}".into(),
        };
        let s = render_ipxe("c", &chain, &v, None).unwrap();
        assert_eq!(s.lines().count(), 3, "{s}");
        assert!(s.ends_with(
            "chain http://other/a%20b%0A%23c%3Bd%7C%7Ce%26%26f%24%7Bnet0/ip%7D%25_.:/-Z9%C3%A9\n"
        ));
    }
}
