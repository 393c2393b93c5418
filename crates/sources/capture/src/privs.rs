//! Dropping root privileges after the sockets are open (tcpdump's `-Z`).

use crate::CaptureError;
use std::ffi::{CStr, CString};
use std::io;

/// Switches the whole process to `user` (its uid, primary gid and supplementary groups).
/// Call it after every socket is open: open sockets and rings keep working. No-op when already
/// running as that user.
pub fn drop_privileges(user: &str) -> Result<(), CaptureError> {
    let bad = |reason: String| CaptureError::Config(format!("-Z {user}: {reason}"));
    let name = CString::new(user).map_err(|_| bad("user name contains NUL".into()))?;
    // SAFETY: `passwd` is plain old data; getpwnam_r fills it with pointers into `buf`, which
    // outlives every use below.
    let (uid, gid) = unsafe {
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut out: *mut libc::passwd = std::ptr::null_mut();
        let mut buf = vec![0 as libc::c_char; 16 * 1024];
        let r = libc::getpwnam_r(
            name.as_ptr(),
            &mut pw,
            buf.as_mut_ptr(),
            buf.len(),
            &mut out,
        );
        if r != 0 || out.is_null() {
            return Err(bad("no such user".into()));
        }
        let _ = CStr::from_ptr(pw.pw_name);
        (pw.pw_uid, pw.pw_gid)
    };
    // SAFETY: plain syscalls without pointers except `name`, a valid C string.
    unsafe {
        if libc::getuid() == uid && libc::geteuid() == uid {
            return Ok(());
        }
        if libc::initgroups(name.as_ptr(), gid) != 0 {
            return Err(bad(format!("initgroups: {}", io::Error::last_os_error())));
        }
        if libc::setgid(gid) != 0 {
            return Err(bad(format!("setgid: {}", io::Error::last_os_error())));
        }
        if libc::setuid(uid) != 0 {
            return Err(bad(format!("setuid: {}", io::Error::last_os_error())));
        }
        if libc::setuid(0) == 0 && uid != 0 {
            return Err(bad("privileges could be regained after setuid".into()));
        }
    }
    Ok(())
}
