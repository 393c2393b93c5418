//! An AF_PACKET sender: `sendmmsg` batches on a raw socket bound to one interface, with
//! PACKET_QDISC_BYPASS, retrying when the device pushes back so no frame is silently lost.

use crate::{sys, CaptureError};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

/// Counters of a [`Sender`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendStats {
    /// Frames accepted by the kernel.
    pub packets: u64,
    /// Bytes of those frames.
    pub bytes: u64,
    /// Times the device pushed back (ENOBUFS/EAGAIN) and a frame was retried.
    pub retries: u64,
    /// `sendmmsg` calls.
    pub calls: u64,
    /// Frames the kernel refused outright (larger than the MTU, shorter than a link header) and
    /// that were skipped.
    pub skipped: u64,
}

/// Sends whole link-layer frames out of one interface.
pub struct Sender {
    fd: OwnedFd,
    iface: String,
    iov: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    stats: SendStats,
}

// SAFETY: `iov`/`msgs` are scratch arrays whose pointers are rebuilt from the caller's borrowed
// frames at each `send` call and never dereferenced outside it; the socket is an owned fd.
unsafe impl Send for Sender {}

/// How long the device may refuse every frame before `send_all` gives up.
const STALL_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Most frames handed to one `sendmmsg` call (the kernel's UIO_MAXIOV).
const MAX_BATCH: usize = 1024;

impl Sender {
    /// Opens a raw socket on `iface` for sending only (protocol 0: it receives nothing).
    /// `qdisc_bypass` sets PACKET_QDISC_BYPASS (frames go straight to the driver).
    pub fn open(iface: &str, qdisc_bypass: bool) -> Result<Self, CaptureError> {
        let ifindex = sys::ifindex(iface)?;
        let fd = sys::packet_socket(iface)?;
        let io = |op: &'static str| move |e| CaptureError::from_io(op, iface, e);
        if qdisc_bypass {
            sys::setsockopt(
                fd.as_fd(),
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                &1i32,
            )
            .map_err(io("PACKET_QDISC_BYPASS"))?;
        }
        let _ = sys::setsockopt(fd.as_fd(), libc::SOL_SOCKET, libc::SO_SNDBUF, &(4i32 << 20));
        sys::bind_ll(fd.as_fd(), ifindex, 0).map_err(io("bind"))?;
        Ok(Sender {
            fd,
            iface: iface.to_string(),
            iov: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                MAX_BATCH
            ],
            msgs: (0..MAX_BATCH)
                // SAFETY: mmsghdr is a plain C struct for which all-zero (null pointers) is valid.
                .map(|_| unsafe { std::mem::zeroed::<libc::mmsghdr>() })
                .collect(),
            stats: SendStats::default(),
        })
    }

    /// Counters so far.
    pub fn stats(&self) -> SendStats {
        self.stats
    }

    /// Sends every frame in order, in `sendmmsg` batches of up to 1024, waiting and retrying
    /// while the device pushes back. Returns how many frames were consumed (sent or skipped as unsendable).
    pub fn send_all(&mut self, frames: &[&[u8]]) -> Result<usize, CaptureError> {
        let mut done = 0;
        let mut stalled: Option<std::time::Instant> = None;
        while done < frames.len() {
            let n = (frames.len() - done).min(MAX_BATCH);
            for (k, fr) in frames[done..done + n].iter().enumerate() {
                self.iov[k] = libc::iovec {
                    iov_base: fr.as_ptr() as *mut libc::c_void,
                    iov_len: fr.len(),
                };
                let h = &mut self.msgs[k].msg_hdr;
                h.msg_iov = &mut self.iov[k];
                h.msg_iovlen = 1;
                self.msgs[k].msg_len = 0;
            }
            // SAFETY: `msgs[..n]` point at `iov[..n]`, which point at the caller's frames; all
            // stay alive and unmoved for the duration of the call.
            let r =
                unsafe { libc::sendmmsg(self.fd.as_raw_fd(), self.msgs.as_mut_ptr(), n as u32, 0) };
            self.stats.calls += 1;
            if r < 0 {
                let e = std::io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::ENOBUFS) | Some(libc::EAGAIN) | Some(libc::EINTR) => {
                        self.stats.retries += 1;
                        let since = *stalled.get_or_insert_with(std::time::Instant::now);
                        if since.elapsed() > STALL_LIMIT {
                            return Err(CaptureError::Io {
                                context: format!(
                                    "sendmmsg on interface {:?}: no frame accepted for {} s \
                                     (is the link, or its veth peer, down?)",
                                    self.iface,
                                    STALL_LIMIT.as_secs()
                                ),
                                source: e,
                            });
                        }
                        let _ = sys::poll1(self.fd.as_fd(), libc::POLLOUT, 1);
                        std::thread::yield_now();
                        continue;
                    }
                    Some(libc::EMSGSIZE) | Some(libc::EINVAL) => {
                        // The first frame of the batch is unsendable: skip it, keep going.
                        self.stats.skipped += 1;
                        done += 1;
                        continue;
                    }
                    _ => return Err(CaptureError::from_io("sendmmsg", &self.iface, e)),
                }
            }
            stalled = None;
            let sent = r as usize;
            for fr in &frames[done..done + sent] {
                self.stats.bytes += fr.len() as u64;
            }
            self.stats.packets += sent as u64;
            done += sent;
        }
        Ok(done)
    }
}
