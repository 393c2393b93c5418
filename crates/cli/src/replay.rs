//! `netspectra replay`: send a capture file out of an interface with AF_PACKET `sendmmsg`
//! (PACKET_QDISC_BYPASS), at the original timing, a scaled timing, a fixed rate or top speed,
//! from one thread or from N threads that each send their share of the flows on their own socket.

use crate::exit::BadInput;
use crate::stdout::outln;
use anyhow::Result;
use clap::Args;
use netspectra_capture::{
    partition_by_flow, pin_current_thread, CaptureError, SendStats, Sender, StopHandle,
};
use netspectra_packet::{LinkType, PacketSource};
use netspectra_pcap::CaptureReader;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Arguments of `netspectra replay`.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Interface to send on.
    #[arg(short = 'i', long)]
    pub interface: String,
    /// Capture file (pcap or pcapng, Ethernet frames); loaded into memory first.
    pub file: PathBuf,
    /// Send at this many packets per second.
    #[arg(long, conflicts_with_all = ["speed", "topspeed"])]
    pub pps: Option<f64>,
    /// Replay at X times the original speed (default 1 = original timing).
    #[arg(long, conflicts_with = "topspeed")]
    pub speed: Option<f64>,
    /// Send as fast as the interface takes frames.
    #[arg(long)]
    pub topspeed: bool,
    /// Send the file N times.
    #[arg(long = "loop", default_value_t = 1)]
    pub loops: u64,
    /// Sender threads, each with its own socket. Frames are split by flow (a symmetric hash of
    /// the 5-tuple, so both directions of a flow go to one thread; non-IP frames to thread 0) and
    /// each thread sends its share in file order: every flow's packets keep their order, but
    /// packets of different flows may be interleaved differently than in the file. Pacing
    /// (--pps, --speed) still follows the file's packet numbers or timestamps.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Pin sender thread i to CPU cpus[i % len] (comma separated).
    #[arg(long, value_delimiter = ',')]
    pub cpus: Vec<usize>,
    /// Go through the qdisc layer instead of bypassing it.
    #[arg(long)]
    pub no_qdisc_bypass: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// How frames are paced.
#[derive(Clone, Copy, Debug)]
enum Pace {
    Top,
    Pps(f64),
    Speed(f64),
}

/// Runs `netspectra replay`.
pub fn run(args: ReplayArgs) -> Result<ExitCode> {
    let pace = if args.topspeed {
        Pace::Top
    } else if let Some(p) = args.pps {
        if !(p > 0.0 && p.is_finite()) {
            return Err(BadInput("--pps must be positive".into()).into());
        }
        Pace::Pps(p)
    } else {
        let s = args.speed.unwrap_or(1.0);
        if !(s > 0.0 && s.is_finite()) {
            return Err(BadInput("--speed must be positive".into()).into());
        }
        Pace::Speed(s)
    };
    if !(1..=256).contains(&args.threads) {
        return Err(BadInput("--threads must be 1..256".into()).into());
    }
    if args.loops == 0 {
        return Err(BadInput("--loop must be at least 1".into()).into());
    }
    // Load the file: one arena of frame bytes plus (offset, len, ts) per frame.
    let mut reader = CaptureReader::open(&args.file)?;
    let mut arena: Vec<u8> = Vec::new();
    let mut recs: Vec<(usize, usize, i64)> = Vec::new();
    let mut bad_link = None;
    while reader.next_batch(&mut |b| {
        for p in b.iter() {
            if p.link != LinkType::ETHERNET {
                bad_link = Some(p.link);
                continue;
            }
            recs.push((arena.len(), p.data.len(), p.ts.as_nanos()));
            arena.extend_from_slice(p.data);
        }
    })? {}
    if let Some(l) = bad_link {
        if recs.is_empty() {
            return Err(BadInput(format!(
                "{}: only Ethernet frames can be replayed, found {l}",
                args.file.display()
            ))
            .into());
        }
        eprintln!("netspectra replay: warning: skipped frames of link type {l} (not Ethernet)");
    }
    let frames: Vec<&[u8]> = recs.iter().map(|&(o, l, _)| &arena[o..o + l]).collect();
    let ts: Vec<i64> = recs.iter().map(|r| r.2).collect();
    // Offset of each loop in the file's own time line (file duration + one mean gap).
    let span = match (ts.first(), ts.last()) {
        (Some(a), Some(b)) if frames.len() > 1 => {
            (b - a).max(0) + (b - a).max(0) / (frames.len() as i64 - 1)
        }
        _ => 0,
    };
    // Each thread's share: its frames and their index in the file, in file order.
    let owner = partition_by_flow(&frames, LinkType::ETHERNET, args.threads);
    let mut shares: Vec<Share<'_>> = (0..args.threads).map(|_| Share::default()).collect();
    for (k, (&f, &o)) in frames.iter().zip(&owner).enumerate() {
        shares[o as usize].frames.push(f);
        shares[o as usize].index.push(k as u32);
    }
    let signals = crate::stop::Stop::install()?;
    let stop = signals.handle().clone();
    let mut senders = Vec::with_capacity(args.threads);
    for _ in 0..args.threads {
        senders.push(Sender::open(&args.interface, !args.no_qdisc_bypass)?);
    }
    let plan = Plan {
        pace,
        loops: args.loops,
        total: frames.len() as u64,
        ts: &ts,
        span,
    };
    let t0 = Instant::now();
    let results: Vec<(SendStats, Result<(), CaptureError>)> = if args.threads == 1 {
        let mut tx = senders.pop().expect("one sender");
        if let Some(&c) = args.cpus.first() {
            if let Err(e) = pin_current_thread(c) {
                eprintln!("netspectra replay: warning: pinning the sender to CPU {c}: {e}");
            }
        }
        let r = send_share(&mut tx, &shares[0], &plan, t0, &stop);
        vec![(tx.stats(), r)]
    } else {
        std::thread::scope(|sc| {
            let handles: Vec<_> = senders
                .into_iter()
                .zip(&shares)
                .enumerate()
                .map(|(k, (mut tx, share))| {
                    let (plan, stop) = (&plan, stop.clone());
                    let cpu = (!args.cpus.is_empty()).then(|| args.cpus[k % args.cpus.len()]);
                    std::thread::Builder::new()
                        .name(format!("replay-{k}"))
                        .spawn_scoped(sc, move || {
                            if let Some(c) = cpu {
                                if let Err(e) = pin_current_thread(c) {
                                    eprintln!(
                                        "netspectra replay: warning: pinning sender {k} to CPU {c}: {e}"
                                    );
                                }
                            }
                            let r = send_share(&mut tx, share, plan, t0, &stop);
                            if r.is_err() {
                                stop.stop(); // the other senders end too
                            }
                            (tx.stats(), r)
                        })
                        .expect("spawn sender thread")
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("sender thread panicked"))
                .collect()
        })
    };
    let el = t0.elapsed().as_secs_f64().max(1e-9);
    let mut st = SendStats::default();
    let mut per_thread = Vec::with_capacity(results.len());
    let mut first_err = None;
    for (s, r) in results {
        st.packets += s.packets;
        st.bytes += s.bytes;
        st.skipped += s.skipped;
        st.retries += s.retries;
        st.calls += s.calls;
        per_thread.push(s);
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    }
    if let Some(e) = first_err {
        return Err(e.into());
    }
    if args.json {
        let per_thread: Vec<_> = per_thread
            .iter()
            .map(|s| {
                serde_json::json!({
                    "packets": s.packets,
                    "bytes": s.bytes,
                    "skipped": s.skipped,
                    "retries": s.retries,
                })
            })
            .collect();
        outln!(
            "{}",
            serde_json::json!({
                "interface": args.interface,
                "file": args.file.display().to_string(),
                "threads": args.threads,
                "packets": st.packets,
                "bytes": st.bytes,
                "skipped": st.skipped,
                "retries": st.retries,
                "seconds": el,
                "pps": st.packets as f64 / el,
                "mbps": st.bytes as f64 * 8.0 / el / 1e6,
                "per_thread": per_thread,
            })
        );
    } else {
        let threads = if args.threads > 1 {
            format!(" with {} threads", args.threads)
        } else {
            String::new()
        };
        outln!(
            "netspectra replay: sent {} packets ({} bytes) on {}{} in {:.3} s: {:.0} pps, {:.1} Mbit/s; \
             {} skipped (unsendable), {} device push-backs retried",
            st.packets,
            st.bytes,
            args.interface,
            threads,
            el,
            st.packets as f64 / el,
            st.bytes as f64 * 8.0 / el / 1e6,
            st.skipped,
            st.retries
        );
    }
    if signals.signal().is_some() {
        return Err(signals
            .interrupted(format!("{} of the file's packets were sent", st.packets))
            .into());
    }
    Ok(ExitCode::SUCCESS)
}

/// The frames one sender thread sends, in file order, with their index in the file.
#[derive(Default)]
struct Share<'a> {
    frames: Vec<&'a [u8]>,
    index: Vec<u32>,
}

/// What every sender thread shares: pacing, loop count and the file's time line.
struct Plan<'a> {
    pace: Pace,
    loops: u64,
    /// Frames in the file.
    total: u64,
    /// Timestamp of every frame in the file (ns).
    ts: &'a [i64],
    /// Offset of one loop on the file's time line (ns).
    span: i64,
}

impl Plan<'_> {
    /// When frame `k` of the file is due in loop `lap`, from the common start; `None` at top speed.
    #[inline]
    fn due(&self, lap: u64, k: usize) -> Option<Duration> {
        match self.pace {
            Pace::Top => None,
            // Packet number n (over all loops) is due at n / pps.
            Pace::Pps(pps) => Some(Duration::from_secs_f64(
                (lap * self.total + k as u64) as f64 / pps,
            )),
            Pace::Speed(x) => {
                let rel = (self.ts[k] - self.ts[0]).max(0) + self.span * lap as i64;
                Some(Duration::from_nanos((rel as f64 / x) as u64))
            }
        }
    }
}

/// Sends one thread's share `plan.loops` times, each frame at its due time on the shared clock
/// that started at `t0` (all threads together follow the file's schedule), in batches of at most
/// 1024 frames that are due, until done or `stop` is raised.
fn send_share(
    tx: &mut Sender,
    share: &Share<'_>,
    plan: &Plan<'_>,
    t0: Instant,
    stop: &StopHandle,
) -> Result<(), CaptureError> {
    let len = share.frames.len();
    for lap in 0..plan.loops {
        let mut i = 0;
        while i < len {
            if stop.is_stopped() {
                return Ok(());
            }
            let n = match plan.due(lap, share.index[i] as usize) {
                None => (len - i).min(1024),
                Some(due) => {
                    if !wait_until(t0 + due, stop) {
                        return Ok(());
                    }
                    let now = t0.elapsed();
                    // Everything due by now (at least one), at most 1024.
                    let mut j = i + 1;
                    while j < len
                        && j - i < 1024
                        && plan
                            .due(lap, share.index[j] as usize)
                            .is_some_and(|d| d <= now)
                    {
                        j += 1;
                    }
                    j - i
                }
            };
            tx.send_all(&share.frames[i..i + n])?;
            i += n;
        }
    }
    Ok(())
}

/// Sleeps until `t`, spinning for the last stretch to keep sub-millisecond pacing. Long gaps
/// are slept in slices so that a stop request ends the wait within one slice; false when it
/// did.
fn wait_until(t: Instant, stop: &StopHandle) -> bool {
    const SLICE: Duration = Duration::from_millis(50);
    loop {
        if stop.is_stopped() {
            return false;
        }
        let now = Instant::now();
        if now >= t {
            return true;
        }
        let left = t - now;
        if left > Duration::from_micros(200) {
            std::thread::sleep((left - Duration::from_micros(100)).min(SLICE));
        } else {
            std::hint::spin_loop();
        }
    }
}
