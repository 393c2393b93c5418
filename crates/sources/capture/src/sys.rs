//! Thin wrappers over the few system calls AF_PACKET needs. Every `unsafe` block of the crate
//! that is not about the ring memory lives here.

use crate::CaptureError;
use std::ffi::CString;
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Opens an `AF_PACKET`/`SOCK_RAW` socket with protocol 0 (receives nothing until bound).
pub(crate) fn packet_socket(iface: &str) -> Result<OwnedFd, CaptureError> {
    // SAFETY: plain syscall with constant arguments; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(CaptureError::last_os("socket(AF_PACKET)", iface));
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt` with a plain-old-data value.
pub(crate) fn setsockopt<T: Copy>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    val: &T,
) -> io::Result<()> {
    // SAFETY: `val` points to `size_of::<T>()` readable bytes for the duration of the call.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (val as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `getsockopt` into a plain-old-data value that is valid for any bit pattern.
pub(crate) fn getsockopt<T: Copy>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<T> {
    let mut val = MaybeUninit::<T>::zeroed();
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: `val` has room for `len` bytes; the kernel writes at most `len` bytes.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            val.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: zero-initialised and the callers only use integer-only C structs.
    Ok(unsafe { val.assume_init() })
}

/// Interface index by name (in the calling thread's network namespace).
pub(crate) fn ifindex(iface: &str) -> Result<i32, CaptureError> {
    let c = CString::new(iface).map_err(|_| CaptureError::NoSuchInterface(iface.into()))?;
    if iface.is_empty() || iface.len() >= libc::IFNAMSIZ {
        return Err(CaptureError::NoSuchInterface(iface.into()));
    }
    // SAFETY: `c` is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        return Err(CaptureError::NoSuchInterface(iface.into()));
    }
    Ok(idx as i32)
}

/// The interface's ARPHRD_ hardware type (SIOCGIFHWADDR).
pub(crate) fn hw_type(fd: BorrowedFd<'_>, iface: &str) -> Result<u16, CaptureError> {
    // SAFETY: `ifreq` is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(iface.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: `req` is a valid ifreq with a NUL-terminated name (the name is < IFNAMSIZ).
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) };
    if r < 0 {
        return Err(CaptureError::last_os("SIOCGIFHWADDR", iface));
    }
    // SAFETY: SIOCGIFHWADDR filled the `ifru_hwaddr` member of the union.
    Ok(unsafe { req.ifr_ifru.ifru_hwaddr.sa_family })
}

/// Binds a packet socket to an interface and protocol (host order).
pub(crate) fn bind_ll(fd: BorrowedFd<'_>, ifindex: i32, proto: u16) -> io::Result<()> {
    // SAFETY: `sockaddr_ll` is plain old data; all-zero is valid.
    let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sa.sll_family = libc::AF_PACKET as u16;
    sa.sll_protocol = proto.to_be();
    sa.sll_ifindex = ifindex;
    // SAFETY: `sa` is a valid sockaddr_ll and its exact size is passed.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Waits for `events` on `fd` up to `timeout_ms`; returns the revents (0 on timeout or EINTR).
pub(crate) fn poll1(fd: BorrowedFd<'_>, events: libc::c_short, timeout_ms: i32) -> io::Result<i16> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(e);
    }
    Ok(if r == 0 { 0 } else { p.revents })
}

/// Pins the calling thread to one CPU.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cpu index out of range",
        ));
    }
    // SAFETY: `cpu_set_t` is plain old data; CPU_SET writes within it (cpu < CPU_SETSIZE).
    let r = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set)
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Link speed in Mbit/s (ethtool ETHTOOL_GSET on `fd`, so it is right inside any network
/// namespace), when the driver reports one.
pub(crate) fn link_speed_mbps(fd: BorrowedFd<'_>, iface: &str) -> Option<u64> {
    const ETHTOOL_GSET: u32 = 1;
    // struct ethtool_cmd: cmd@0 supported@4 advertising@8 speed@12(u16) ... speed_hi@28(u16).
    let mut cmd = [0u32; 11];
    cmd[0] = ETHTOOL_GSET;
    // SAFETY: `ifreq` is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if iface.len() >= libc::IFNAMSIZ {
        return None;
    }
    for (d, s) in req.ifr_name.iter_mut().zip(iface.bytes()) {
        *d = s as libc::c_char;
    }
    req.ifr_ifru.ifru_data = cmd.as_mut_ptr().cast();
    // SAFETY: `req` names the interface and points at a 44-byte ethtool_cmd buffer that lives
    // across the call; the kernel writes at most that much.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCETHTOOL, &mut req) };
    if r < 0 {
        return None;
    }
    let lo = cmd[3] & 0xffff;
    let hi = cmd[7] & 0xffff;
    let speed = hi << 16 | lo;
    (speed != 0 && speed != u32::MAX && speed != 0xffff).then_some(speed as u64)
}
