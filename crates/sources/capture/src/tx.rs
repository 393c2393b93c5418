//! An AF_PACKET sender: `sendmmsg` batches on a raw socket bound to one interface, with
//! PACKET_QDISC_BYPASS, retrying when the device pushes back so no frame is silently lost.

use crate::{sys, CaptureError};
use netspectra_packet::{decode, DecodeOptions, FlowKey, Fragment, LinkType};
use std::collections::HashSet;
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

/// Assigns each frame to one of `n` senders by flow, so that every flow's frames stay in their
/// original order when each sender sends its share in order: the index of frame `i`'s sender is
/// `out[i]`.
///
/// The key is the packet's [`FlowKey`] and the index its [`FlowKey::symmetric_hash`] modulo `n`,
/// so both directions of a flow go to one sender. Fragments carry no ports after the first, so
/// for any (address pair, protocol, VLAN) that has a fragment anywhere in `frames` the ports are
/// left out of the key: every fragment and every unfragmented packet of those flows share a
/// sender. Frames without an IP layer (ARP, LLDP, ...) all go to sender 0.
pub fn partition_by_flow(frames: &[&[u8]], link: LinkType, n: usize) -> Vec<u32> {
    if n <= 1 {
        return vec![0; frames.len()];
    }
    let opts = DecodeOptions::default();
    let keys: Vec<Option<(FlowKey, bool)>> = frames
        .iter()
        .map(|f| {
            let v = decode(f, link, None, &opts);
            FlowKey::from_view(&v).map(|k| (k, v.fragment != Fragment::None))
        })
        .collect();
    let portless = |k: &FlowKey| FlowKey {
        src_port: 0,
        dst_port: 0,
        ..k.canonical().0
    };
    let fragmented: HashSet<FlowKey> = keys
        .iter()
        .flatten()
        .filter(|(_, frag)| *frag)
        .map(|(k, _)| portless(k))
        .collect();
    keys.iter()
        .map(|k| match k {
            None => 0,
            Some((k, _)) => {
                let h = if !fragmented.is_empty() && fragmented.contains(&portless(k)) {
                    portless(k).symmetric_hash()
                } else {
                    k.symmetric_hash()
                };
                (h % n as u64) as u32
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16, frag: u16) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0];
        f.extend_from_slice(&[0x45, 0, 0, 36, 0, 1]);
        f.extend_from_slice(&frag.to_be_bytes());
        f.extend_from_slice(&[64, 17, 0, 0]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&sp.to_be_bytes());
        f.extend_from_slice(&dp.to_be_bytes());
        f.extend_from_slice(&[0, 16, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
        f
    }

    #[test]
    fn both_directions_share_a_sender_and_non_ip_goes_to_zero() {
        let mut frames = Vec::new();
        for fl in 0..200u16 {
            let a = [10, 1, (fl >> 8) as u8, fl as u8];
            frames.push(udp(a, [10, 2, 0, 1], 10_000 + fl, 5001, 0));
            frames.push(udp([10, 2, 0, 1], a, 5001, 10_000 + fl, 0));
        }
        let mut arp = vec![0xff; 6];
        arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 8, 6]);
        arp.resize(60, 0);
        frames.push(arp);
        let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
        let p = partition_by_flow(&refs, LinkType::ETHERNET, 3);
        for pair in p[..400].chunks(2) {
            assert_eq!(pair[0], pair[1]);
        }
        assert_eq!(p[400], 0);
        for s in 0..3 {
            let c = p.iter().filter(|&&x| x == s).count();
            assert!(c > 80, "sender {s} got {c} of 401");
        }
        assert_eq!(
            partition_by_flow(&refs, LinkType::ETHERNET, 1),
            vec![0; 401]
        );
    }

    #[test]
    fn fragments_stay_with_their_flow() {
        let (a, b) = ([10, 0, 0, 1], [10, 0, 0, 2]);
        let mut frames = Vec::new();
        for sp in 0..64u16 {
            frames.push(udp(a, b, 20_000 + sp, 53, 0));
        }
        frames.push(udp(a, b, 20_000, 53, 0x2000)); // first fragment (MF)
        frames.push(udp(a, b, 0, 0, 3)); // a later fragment: no ports
        frames.push(udp([10, 9, 0, 1], b, 1, 2, 0));
        let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
        let p = partition_by_flow(&refs, LinkType::ETHERNET, 4);
        // Every UDP packet between a and b (fragmented or not) goes to one sender.
        assert!(p[..66].iter().all(|&x| x == p[0]), "{p:?}");
    }
}
