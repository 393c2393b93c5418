//! `netspectra replay`: send a capture file out of an interface with AF_PACKET `sendmmsg`
//! (PACKET_QDISC_BYPASS), at the original timing, a scaled timing, a fixed rate or top speed.

use crate::exit::BadInput;
use anyhow::{Context, Result};
use clap::Args;
use netspectra_capture::{Sender, StopHandle};
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
    let stop = StopHandle::new();
    stop.stop_on_signals()
        .context("installing signal handlers")?;
    let mut tx = Sender::open(&args.interface, !args.no_qdisc_bypass)?;
    let t0 = Instant::now();
    // Offset of each loop in the file's own time line (file duration + one mean gap).
    let span = match (ts.first(), ts.last()) {
        (Some(a), Some(b)) if frames.len() > 1 => {
            (b - a).max(0) + (b - a).max(0) / (frames.len() as i64 - 1)
        }
        _ => 0,
    };
    let mut sent_before = 0u64;
    'outer: for lap in 0..args.loops {
        let mut i = 0;
        while i < frames.len() {
            if stop.is_stopped() {
                break 'outer;
            }
            let n = match pace {
                Pace::Top => (frames.len() - i).min(1024),
                Pace::Pps(pps) => {
                    // Packet number k (over all loops) is due at k / pps.
                    let k = sent_before + i as u64;
                    let due = Duration::from_secs_f64(k as f64 / pps);
                    wait_until(t0 + due);
                    let now = t0.elapsed().as_secs_f64();
                    // Everything due by now (at least one), at most 1024.
                    let upto = ((now * pps) as u64 + 1).saturating_sub(k).max(1);
                    (upto as usize).min(1024).min(frames.len() - i)
                }
                Pace::Speed(x) => {
                    let base = ts[0];
                    let at = |j: usize| {
                        let rel = (ts[j] - base).max(0) + span * lap as i64;
                        Duration::from_nanos((rel as f64 / x) as u64)
                    };
                    wait_until(t0 + at(i));
                    let now = t0.elapsed();
                    let mut j = i + 1;
                    while j < frames.len() && j - i < 1024 && at(j) <= now {
                        j += 1;
                    }
                    j - i
                }
            };
            tx.send_all(&frames[i..i + n])?;
            i += n;
        }
        sent_before += frames.len() as u64;
    }
    let el = t0.elapsed().as_secs_f64().max(1e-9);
    let st = tx.stats();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "interface": args.interface,
                "file": args.file.display().to_string(),
                "packets": st.packets,
                "bytes": st.bytes,
                "skipped": st.skipped,
                "retries": st.retries,
                "seconds": el,
                "pps": st.packets as f64 / el,
                "mbps": st.bytes as f64 * 8.0 / el / 1e6,
            })
        );
    } else {
        println!(
            "netspectra replay: sent {} packets ({} bytes) on {} in {:.3} s: {:.0} pps, {:.1} Mbit/s; \
             {} skipped (unsendable), {} device push-backs retried",
            st.packets,
            st.bytes,
            args.interface,
            el,
            st.packets as f64 / el,
            st.bytes as f64 * 8.0 / el / 1e6,
            st.skipped,
            st.retries
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Sleeps until `t`, spinning for the last stretch to keep sub-millisecond pacing.
fn wait_until(t: Instant) {
    loop {
        let now = Instant::now();
        if now >= t {
            return;
        }
        let left = t - now;
        if left > Duration::from_micros(200) {
            std::thread::sleep(left - Duration::from_micros(100));
        } else {
            std::hint::spin_loop();
        }
    }
}
