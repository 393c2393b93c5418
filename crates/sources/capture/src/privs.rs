//! Dropping root privileges after the sockets are open (tcpdump's `-Z`).

use crate::CaptureError;
use std::ffi::{CStr, CString};
use std::io;

/// The uid and primary gid of `user`.
pub fn user_ids(user: &str) -> Result<(u32, u32), CaptureError> {
    let bad = |reason: String| CaptureError::Config(format!("-Z {user}: {reason}"));
    let name = CString::new(user).map_err(|_| bad("user name contains NUL".into()))?;
    // SAFETY: `passwd` is plain old data; getpwnam_r fills it with pointers into `buf`, which
    // outlives every use below.
    unsafe {
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
        Ok((pw.pw_uid, pw.pw_gid))
    }
}

/// Gives `path` (a folder the process made for its outputs) to `user`, so that it can still
/// write there after [`drop_privileges`].
pub fn give_to(path: &std::path::Path, user: &str) -> Result<(), CaptureError> {
    use std::os::unix::ffi::OsStrExt;
    let (uid, gid) = user_ids(user)?;
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| CaptureError::Config(format!("{}: path contains NUL", path.display())))?;
    // SAFETY: `c` is a valid C string for the duration of the call.
    if unsafe { libc::chown(c.as_ptr(), uid, gid) } != 0 {
        return Err(CaptureError::Config(format!(
            "chown {} to {user}: {}",
            path.display(),
            io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// Switches the whole process to `user` (its uid, primary gid and supplementary groups).
/// Call it after every socket is open: open sockets and rings keep working. No-op when already
/// running as that user.
pub fn drop_privileges(user: &str) -> Result<(), CaptureError> {
    let bad = |reason: String| CaptureError::Config(format!("-Z {user}: {reason}"));
    let name = CString::new(user).map_err(|_| bad("user name contains NUL".into()))?;
    let (uid, gid) = user_ids(user)?;
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
