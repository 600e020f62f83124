//! Socket setup shared by the listeners: bound to one interface so that broadcasts leave
//! through it and never through the default route, and ARP entries for DHCP unicast.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, Socket, Type};

use crate::mac::Mac;

/// A socket could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("{what} {addr} on interface {interface}: {source}")]
pub(crate) struct SocketError {
    /// What was being done.
    pub what: &'static str,
    pub addr: SocketAddr,
    pub interface: String,
    pub source: std::io::Error,
}

/// A UDP socket bound to `addr` and to `interface` (`SO_BINDTODEVICE`), with broadcast on.
pub(crate) fn udp_on_interface(
    interface: &str,
    addr: SocketAddr,
) -> Result<tokio::net::UdpSocket, SocketError> {
    let err = |what: &'static str| {
        let interface = interface.to_string();
        move |source| SocketError {
            what,
            addr,
            interface,
            source,
        }
    };
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(err("creating socket for"))?;
    s.set_reuse_address(true)
        .map_err(err("setting SO_REUSEADDR on"))?;
    s.set_broadcast(true)
        .map_err(err("setting SO_BROADCAST on"))?;
    s.bind_device(Some(interface.as_bytes()))
        .map_err(err("binding to device for"))?;
    grow_receive_buffer(&s);
    s.set_nonblocking(true)
        .map_err(err("setting non-blocking on"))?;
    s.bind(&addr.into()).map_err(err("binding"))?;
    tokio::net::UdpSocket::from_std(s.into()).map_err(err("registering"))
}

/// Receive buffer asked for on DHCP and TFTP sockets: with the default (about 200 KiB, some
/// 170 DHCP datagrams) a few milliseconds' pause in a 10,000/s storm overflows it and the
/// kernel drops requests (dnsmasq's failure in ipxe/ipxe#643).
pub(crate) const RECEIVE_BUFFER: usize = 4 << 20;

/// Raises a socket's receive buffer to [`RECEIVE_BUFFER`]: past `net.core.rmem_max` with
/// CAP_NET_ADMIN, else up to it. Failing leaves the default, which still works.
fn grow_receive_buffer(s: &Socket) {
    if rustix::net::sockopt::set_socket_recv_buffer_size_force(s, RECEIVE_BUFFER).is_err() {
        let _ = s.set_recv_buffer_size(RECEIVE_BUFFER);
    }
}

/// `ATF_COM` from <net/if_arp.h>: the entry is complete (has a hardware address).
const ATF_COM: libc::c_int = 0x02;

/// Adds a complete ARP entry `ip -> mac` on `interface`, so that a DHCP reply can be
/// unicast to a client that has no address yet (RFC 2131 §4.1). Needs CAP_NET_ADMIN.
pub(crate) fn inject_arp(
    socket: &impl AsRawFd,
    interface: &str,
    ip: Ipv4Addr,
    mac: Mac,
) -> std::io::Result<()> {
    // SAFETY: arpreq is plain old data; all-zero is a valid value.
    let mut req: libc::arpreq = unsafe { std::mem::zeroed() };
    let pa = SocketAddrV4::new(ip, 0);
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(*pa.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in fits in sockaddr (16 bytes each) and both are POD.
    req.arp_pa = unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) };
    req.arp_ha.sa_family = libc::ARPHRD_ETHER;
    for (dst, src) in req.arp_ha.sa_data.iter_mut().zip(mac.0) {
        *dst = src as libc::c_char;
    }
    req.arp_flags = ATF_COM;
    let name = interface.as_bytes();
    if name.len() >= req.arp_dev.len() {
        return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
    }
    for (dst, src) in req.arp_dev.iter_mut().zip(name) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCSARP reads one arpreq, which lives for the duration of the call.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSARP, &req) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
