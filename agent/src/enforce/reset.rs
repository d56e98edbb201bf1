//! Resets a TCP connection from outside its process: sock_diag `SOCK_DESTROY` (what `ss -K`
//! does), which aborts the socket and sends the peer an RST. Needs CONFIG_INET_DIAG_DESTROY
//! (Debian and most distributions have it) and CAP_NET_ADMIN (CAP_SYS_ADMIN does not stand in
//! for it here); without them the gate alone holds the connection.

use std::{io, os::fd::FromRawFd as _, os::fd::OwnedFd, time::Instant};

use agent_common::{
    enforce::GateKey,
    event::{AF_INET, AF_INET6},
};

const SOCK_DESTROY: u16 = 21;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLMSG_ERROR: u16 = 2;
const IPPROTO_TCP: u8 = 6;
const INET_DIAG_NOCOOKIE: u32 = !0;

#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    #[error("the connection's addresses are unknown")]
    NoTuple,
    #[error("sock_diag socket: {0}")]
    Socket(#[source] io::Error),
    #[error("sock_diag SOCK_DESTROY: {0}")]
    Destroy(#[source] io::Error),
    #[error("sock_diag answered with a malformed message")]
    Malformed,
}

impl ResetError {
    /// A short reason for events and counters.
    pub fn reason(&self) -> &'static str {
        match self {
            ResetError::NoTuple => "tuple_unknown",
            ResetError::Socket(_) => "netlink_unavailable",
            ResetError::Destroy(e) if e.raw_os_error() == Some(libc::ENOENT) => "socket_gone",
            ResetError::Destroy(e) if e.raw_os_error() == Some(libc::EPERM) => "no_cap_net_admin",
            ResetError::Destroy(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                "kernel_without_inet_diag_destroy"
            }
            ResetError::Destroy(_) => "destroy_failed",
            ResetError::Malformed => "malformed_reply",
        }
    }
}

/// One SOCK_DESTROY request: netlink header + inet_diag_req_v2, in native byte order except the
/// ports and addresses, which sock_diag takes in network order.
fn request(tuple: &GateKey, seq: u32) -> Option<Vec<u8>> {
    let family = match tuple.family {
        AF_INET => libc::AF_INET as u8,
        AF_INET6 => libc::AF_INET6 as u8,
        _ => return None,
    };
    let mut m = Vec::with_capacity(72);
    m.extend_from_slice(&72u32.to_ne_bytes());
    m.extend_from_slice(&SOCK_DESTROY.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&[family, IPPROTO_TCP, 0, 0]);
    m.extend_from_slice(&u32::MAX.to_ne_bytes()); // every TCP state
    m.extend_from_slice(&tuple.local_port.to_be_bytes());
    m.extend_from_slice(&tuple.remote_port.to_be_bytes());
    m.extend_from_slice(&tuple.local_addr);
    m.extend_from_slice(&tuple.remote_addr);
    m.extend_from_slice(&0u32.to_ne_bytes()); // any interface
    m.extend_from_slice(&INET_DIAG_NOCOOKIE.to_ne_bytes());
    m.extend_from_slice(&INET_DIAG_NOCOOKIE.to_ne_bytes());
    Some(m)
}

/// The errno of the kernel's acknowledgement (0 = done).
fn ack_errno(reply: &[u8]) -> Result<i32, ResetError> {
    let kind = reply
        .get(4..6)
        .and_then(|b| b.try_into().ok())
        .map(u16::from_ne_bytes)
        .ok_or(ResetError::Malformed)?;
    if kind != NLMSG_ERROR {
        return Err(ResetError::Malformed);
    }
    let error = reply
        .get(16..20)
        .and_then(|b| b.try_into().ok())
        .map(i32::from_ne_bytes)
        .ok_or(ResetError::Malformed)?;
    Ok(-error)
}

/// Resets the connection with this tuple (the socket's own view); returns how long it took.
pub fn reset(tuple: &GateKey) -> Result<std::time::Duration, ResetError> {
    let started = Instant::now();
    let message = request(tuple, 1).ok_or(ResetError::NoTuple)?;
    // SAFETY: plain socket(2) call; the fd is owned below.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if raw < 0 {
        return Err(ResetError::Socket(io::Error::last_os_error()));
    }
    // SAFETY: raw is a fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    use std::os::fd::AsRawFd as _;
    let timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: 200_000,
    };
    // SAFETY: valid fd, option value and length.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const timeout).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        )
    };
    // SAFETY: zeroed sockaddr_nl is the kernel's address (pid 0).
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as u16;
    // SAFETY: valid buffer and address.
    let sent = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            message.as_ptr().cast(),
            message.len(),
            0,
            (&raw const kernel).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if sent < 0 {
        return Err(ResetError::Destroy(io::Error::last_os_error()));
    }
    let mut reply = [0u8; 512];
    // SAFETY: valid buffer.
    let got = unsafe { libc::recv(fd.as_raw_fd(), reply.as_mut_ptr().cast(), reply.len(), 0) };
    if got < 0 {
        return Err(ResetError::Destroy(io::Error::last_os_error()));
    }
    let reply = reply.get(..got as usize).ok_or(ResetError::Malformed)?;
    match ack_errno(reply)? {
        0 => Ok(started.elapsed()),
        errno => Err(ResetError::Destroy(io::Error::from_raw_os_error(errno))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout_is_inet_diag_req_v2() {
        let mut t = GateKey {
            family: AF_INET,
            local_port: 443,
            remote_port: 50000,
            ..GateKey::default()
        };
        t.local_addr[..4].copy_from_slice(&[127, 0, 0, 1]);
        let m = request(&t, 7).expect("inet");
        assert_eq!(m.len(), 72);
        assert_eq!(m.get(16..18), Some(&[libc::AF_INET as u8, 6][..]));
        assert_eq!(m.get(24..26), Some(&443u16.to_be_bytes()[..]));
        assert_eq!(m.get(26..28), Some(&50000u16.to_be_bytes()[..]));
        assert_eq!(m.get(28..32), Some(&[127, 0, 0, 1][..]));
        assert!(request(&GateKey::default(), 1).is_none());
    }

    #[test]
    fn acknowledgements_and_garbage() {
        let mut ack = vec![0u8; 36];
        ack[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        ack[16..20].copy_from_slice(&(-libc::ENOENT).to_ne_bytes());
        assert_eq!(ack_errno(&ack).ok(), Some(libc::ENOENT));
        assert!(ack_errno(&[1, 2, 3]).is_err());
        assert!(ack_errno(&[0u8; 20]).is_err());
    }
}
