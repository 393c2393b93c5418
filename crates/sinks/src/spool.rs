//! A bounded on-disk FIFO of batches, for a sink that cannot take them now (a server down) or
//! fast enough: what it holds is delivered in order when the sink is back, also by the next run
//! after a restart.
//!
//! Layout: segment files `NNNNNNNNNNNNNNNNNNNN.seg` (numbered in order) of framed batches, and
//! beside each a `.ack` file with the byte offset up to which its batches were delivered. A
//! segment is deleted once delivered whole. Each frame carries a checksum: a torn frame at the
//! end (a crash while writing) ends that segment and is counted, never read as records.
//!
//! Frame: `NSPL` magic, version 1, stream kind (1 byte), view name (u16 length + bytes), batch
//! sequence (u64), record count (u64), JSON lines (u32 length + bytes), xxh3 of everything
//! before it (u64). Integers little-endian.

use crate::stream::{Batch, Stream, StreamKind};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 4] = b"NSPL";
const VERSION: u8 = 1;
/// A new segment is started when the current one reaches this size.
pub const SEGMENT_BYTES: u64 = 8 << 20;
/// Number of the first segment: far from 0, so that batches can be put in front of the
/// oldest segment (see [`Spool::prepend`]).
const FIRST_ID: u64 = 1 << 40;
/// Largest frame accepted when reading back (a corrupt length is not allocated).
const MAX_FRAME: u64 = 1 << 30;

/// Spool failures (the disk, not the data).
#[derive(Debug, thiserror::Error)]
#[error("spool {path}: {source}")]
pub struct SpoolError {
    /// The file or directory.
    pub path: PathBuf,
    /// The I/O error.
    #[source]
    pub source: io::Error,
}

fn err(path: &Path) -> impl Fn(io::Error) -> SpoolError + '_ {
    move |source| SpoolError {
        path: path.to_path_buf(),
        source,
    }
}

struct Segment {
    id: u64,
    path: PathBuf,
    /// Bytes written.
    len: u64,
    /// Bytes delivered (from the start).
    acked: u64,
    /// Batches not yet delivered.
    batches: u64,
    /// Records not yet delivered.
    records: u64,
}

/// The spool of one sink.
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segments: VecDeque<Segment>,
    writer: Option<BufWriter<File>>,
    /// The frame handed out by [`Spool::peek`] and its length, until acknowledged.
    peeked: Option<u64>,
    reader: Option<(u64, File)>,
    /// Torn or corrupt frames skipped while reading back.
    corrupt: u64,
}

fn ack_path(seg: &Path) -> PathBuf {
    seg.with_extension("ack")
}

impl Spool {
    /// Opens (creating) a spool directory of at most `max_bytes` undelivered bytes, picking up
    /// what an earlier run left: those batches come out first.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Spool, SpoolError> {
        std::fs::create_dir_all(dir).map_err(err(dir))?;
        let mut ids: Vec<u64> = std::fs::read_dir(dir)
            .map_err(err(dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".seg")?.parse().ok()
            })
            .collect();
        ids.sort_unstable();
        let mut s = Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            segments: VecDeque::new(),
            writer: None,
            peeked: None,
            reader: None,
            corrupt: 0,
        };
        for id in ids {
            let path = s.seg_path(id);
            let len = std::fs::metadata(&path).map_err(err(&path))?.len();
            let acked = std::fs::read_to_string(ack_path(&path))
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
                .unwrap_or(0)
                .min(len);
            let (batches, records, good) = scan(&path, acked).map_err(err(&path))?;
            if good < len {
                // A torn frame at the end: cut it off so that new frames follow good ones.
                s.corrupt += 1;
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(good))
                    .map_err(err(&path))?;
            }
            if batches == 0 {
                let _ = std::fs::remove_file(&path);
                let _ = std::fs::remove_file(ack_path(&path));
                continue;
            }
            s.segments.push_back(Segment {
                id,
                path,
                len: good,
                acked,
                batches,
                records,
            });
        }
        Ok(s)
    }

    fn seg_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:020}.seg"))
    }

    /// The spool's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// True when nothing waits in it.
    pub fn is_empty(&self) -> bool {
        self.segments.iter().all(|s| s.batches == 0)
    }

    /// Undelivered bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len - s.acked).sum()
    }

    /// Undelivered batches.
    pub fn batches(&self) -> u64 {
        self.segments.iter().map(|s| s.batches).sum()
    }

    /// Undelivered records.
    pub fn records(&self) -> u64 {
        self.segments.iter().map(|s| s.records).sum()
    }

    /// Torn or corrupt frames found and skipped so far.
    pub fn corrupt_frames(&self) -> u64 {
        self.corrupt
    }

    /// Puts batches in front of everything the spool holds (batches older than those already
    /// in it: what was still in memory at shutdown), in their order. Unlike
    /// [`Spool::push`] this never refuses for size: these batches were accepted already and
    /// would otherwise be lost. Returns how many were written.
    pub fn prepend(&mut self, batches: &[std::sync::Arc<Batch>]) -> Result<usize, SpoolError> {
        if batches.is_empty() {
            return Ok(0);
        }
        if self.segments.is_empty() {
            for b in batches {
                self.push_unbounded(b)?;
            }
            return Ok(batches.len());
        }
        let id = self
            .segments
            .front()
            .map_or(FIRST_ID, |s| s.id)
            .saturating_sub(1);
        let path = self.seg_path(id);
        let mut w = BufWriter::new(
            OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&path)
                .map_err(err(&path))?,
        );
        let (mut len, mut records) = (0u64, 0u64);
        for b in batches {
            let frame = encode(b);
            w.write_all(&frame).map_err(err(&path))?;
            len += frame.len() as u64;
            records += b.records();
        }
        w.flush()
            .and_then(|()| w.get_ref().sync_data())
            .map_err(err(&path))?;
        self.reader = None;
        self.segments.push_front(Segment {
            id,
            path,
            len,
            acked: 0,
            batches: batches.len() as u64,
            records,
        });
        Ok(batches.len())
    }

    fn push_unbounded(&mut self, b: &Batch) -> Result<(), SpoolError> {
        let max = self.max_bytes;
        self.max_bytes = u64::MAX;
        let r = self.push(b);
        self.max_bytes = max;
        r.map(|_| ())
    }

    /// Appends a batch; false (nothing written) when it would pass the size bound.
    pub fn push(&mut self, b: &Batch) -> Result<bool, SpoolError> {
        let frame = encode(b);
        if self.bytes() + frame.len() as u64 > self.max_bytes {
            return Ok(false);
        }
        let need_new = match self.segments.back() {
            None => true,
            Some(s) => self.writer.is_none() || s.len >= SEGMENT_BYTES,
        };
        if need_new {
            self.writer = None;
            let id = self.segments.back().map_or(FIRST_ID, |s| s.id + 1);
            let path = self.seg_path(id);
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(err(&path))?;
            self.writer = Some(BufWriter::with_capacity(1 << 16, f));
            self.segments.push_back(Segment {
                id,
                path,
                len: 0,
                acked: 0,
                batches: 0,
                records: 0,
            });
        }
        let seg = self.segments.back_mut().expect("a segment exists");
        let w = self.writer.as_mut().expect("a writer exists");
        w.write_all(&frame)
            .and_then(|()| w.flush())
            .map_err(err(&seg.path))?;
        seg.len += frame.len() as u64;
        seg.batches += 1;
        seg.records += b.records();
        Ok(true)
    }

    /// Forces what was pushed to stable storage (at shutdown).
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        if let (Some(w), Some(s)) = (self.writer.as_mut(), self.segments.back()) {
            w.flush()
                .and_then(|()| w.get_ref().sync_data())
                .map_err(err(&s.path))?;
        }
        Ok(())
    }

    /// The oldest undelivered batch (the same one until [`Spool::ack`]).
    pub fn peek(&mut self) -> Result<Option<Batch>, SpoolError> {
        loop {
            let Some(seg) = self.segments.front() else {
                return Ok(None);
            };
            if seg.batches == 0 {
                if self.segments.len() == 1 {
                    return Ok(None);
                }
                self.drop_front();
                continue;
            }
            let (id, path, at) = (seg.id, seg.path.clone(), seg.acked);
            if self.reader.as_ref().map(|r| r.0) != Some(id) {
                let f = File::open(&path).map_err(err(&path))?;
                self.reader = Some((id, f));
            }
            let f = &mut self.reader.as_mut().expect("opened above").1;
            f.seek(SeekFrom::Start(at)).map_err(err(&path))?;
            match decode(f).map_err(err(&path))? {
                Some((b, len)) => {
                    self.peeked = Some(len);
                    return Ok(Some(b));
                }
                None => {
                    // Nothing readable past here: a torn frame. Skip the rest of the segment.
                    self.corrupt += 1;
                    let seg = self.segments.front_mut().expect("checked");
                    seg.acked = seg.len;
                    seg.batches = 0;
                    seg.records = 0;
                }
            }
        }
    }

    /// Marks the batch from [`Spool::peek`] delivered: it never comes out again, also not after
    /// a restart. A segment delivered whole is deleted.
    pub fn ack(&mut self, records: u64) -> Result<(), SpoolError> {
        let Some(len) = self.peeked.take() else {
            return Ok(());
        };
        let seg = self
            .segments
            .front_mut()
            .expect("a peeked batch has a segment");
        seg.acked += len;
        seg.batches = seg.batches.saturating_sub(1);
        seg.records = seg.records.saturating_sub(records);
        let (path, acked, done) = (seg.path.clone(), seg.acked, seg.batches == 0);
        let is_tail = self.segments.len() == 1;
        if done && !is_tail {
            self.drop_front();
        } else if done && is_tail {
            // The tail is also the writer's: start afresh.
            self.writer = None;
            self.drop_front();
        } else {
            let ack = ack_path(&path);
            let tmp = ack.with_extension("ack.tmp");
            std::fs::write(&tmp, acked.to_string())
                .and_then(|()| std::fs::rename(&tmp, &ack))
                .map_err(err(&ack))?;
        }
        Ok(())
    }

    fn drop_front(&mut self) {
        if let Some(s) = self.segments.pop_front() {
            if self.reader.as_ref().map(|r| r.0) == Some(s.id) {
                self.reader = None;
            }
            let _ = std::fs::remove_file(&s.path);
            let _ = std::fs::remove_file(ack_path(&s.path));
        }
    }
}

fn kind_code(k: StreamKind) -> u8 {
    match k {
        StreamKind::Flows => 1,
        StreamKind::View => 2,
        StreamKind::Http => 3,
        StreamKind::Alerts => 4,
        StreamKind::Guard => 5,
        StreamKind::Tls => 6,
        StreamKind::Dns => 7,
    }
}

fn kind_of(c: u8) -> Option<StreamKind> {
    StreamKind::ALL.into_iter().find(|k| kind_code(*k) == c)
}

fn encode(b: &Batch) -> Vec<u8> {
    let json = b.json();
    let view = b.stream.view.as_deref().unwrap_or("");
    let mut f = Vec::with_capacity(json.len() + 64);
    f.extend_from_slice(MAGIC);
    f.push(VERSION);
    f.push(kind_code(b.stream.kind));
    f.extend_from_slice(&(view.len() as u16).to_le_bytes());
    f.extend_from_slice(view.as_bytes());
    f.extend_from_slice(&b.seq.to_le_bytes());
    f.extend_from_slice(&b.records().to_le_bytes());
    f.extend_from_slice(&(json.len() as u32).to_le_bytes());
    f.extend_from_slice(json);
    let sum = xxhash_rust::xxh3::xxh3_64(&f);
    f.extend_from_slice(&sum.to_le_bytes());
    f
}

/// Reads one frame; `None` at the end of good data (end of file, or a torn/corrupt frame).
fn decode(r: &mut impl Read) -> io::Result<Option<(Batch, u64)>> {
    let mut head = [0u8; 8];
    if !read_full(r, &mut head)? || &head[..4] != MAGIC || head[4] != VERSION {
        return Ok(None);
    }
    let Some(kind) = kind_of(head[5]) else {
        return Ok(None);
    };
    let vlen = u16::from_le_bytes([head[6], head[7]]) as usize;
    let mut rest = vec![0u8; vlen + 20];
    if !read_full(r, &mut rest)? {
        return Ok(None);
    }
    let jlen = u32::from_le_bytes(rest[vlen + 16..vlen + 20].try_into().expect("4 bytes")) as u64;
    if jlen > MAX_FRAME {
        return Ok(None);
    }
    let mut body = vec![0u8; jlen as usize + 8];
    if !read_full(r, &mut body)? {
        return Ok(None);
    }
    let mut whole = Vec::with_capacity(8 + rest.len() + body.len());
    whole.extend_from_slice(&head);
    whole.extend_from_slice(&rest);
    whole.extend_from_slice(&body[..jlen as usize]);
    let sum = u64::from_le_bytes(body[jlen as usize..].try_into().expect("8 bytes"));
    if xxhash_rust::xxh3::xxh3_64(&whole) != sum {
        return Ok(None);
    }
    let view = std::str::from_utf8(&rest[..vlen]).ok();
    let seq = u64::from_le_bytes(rest[vlen..vlen + 8].try_into().expect("8 bytes"));
    let records = u64::from_le_bytes(rest[vlen + 8..vlen + 16].try_into().expect("8 bytes"));
    let stream = match (kind, view) {
        (StreamKind::View, Some(v)) => Stream::view(v),
        (k, _) => Stream::of(k),
    };
    body.truncate(jlen as usize);
    let len = whole.len() as u64 + 8;
    Ok(Some((Batch::encoded(stream, seq, records, body), len)))
}

/// Fills `buf`; false when the input ended first.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => return Ok(false),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Counts the good frames of a segment after `from`: (batches, records, end of good data).
fn scan(path: &Path, from: u64) -> io::Result<(u64, u64, u64)> {
    let mut f = io::BufReader::new(File::open(path)?);
    f.seek(SeekFrom::Start(from))?;
    let (mut batches, mut records, mut at) = (0, 0, from);
    while let Some((b, len)) = decode(&mut f)? {
        batches += 1;
        records += b.records();
        at += len;
    }
    Ok((batches, records, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(seq: u64, lines: u64) -> Batch {
        let json: Vec<u8> = (0..lines)
            .flat_map(|i| format!("{{\"seq\":{seq},\"i\":{i}}}\n").into_bytes())
            .collect();
        let stream = if seq.is_multiple_of(3) {
            Stream::view("src_ip")
        } else {
            Stream::of(StreamKind::Http)
        };
        Batch::encoded(stream, seq, lines, json)
    }

    fn drain(s: &mut Spool) -> Vec<u64> {
        let mut got = Vec::new();
        while let Some(b) = s.peek().unwrap() {
            got.push(b.seq);
            s.ack(b.records()).unwrap();
        }
        got
    }

    #[test]
    fn batches_come_out_in_order_with_their_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 1 << 30).unwrap();
        let sent: Vec<Batch> = (0..50).map(|i| batch(i, i % 7 + 1)).collect();
        for b in &sent {
            assert!(s.push(b).unwrap());
        }
        assert_eq!(s.batches(), 50);
        assert_eq!(s.records(), sent.iter().map(Batch::records).sum::<u64>());
        for want in &sent {
            let got = s.peek().unwrap().unwrap();
            // Not acknowledged: the same batch again.
            assert_eq!(s.peek().unwrap().unwrap().seq, got.seq);
            assert_eq!((got.seq, got.json()), (want.seq, want.json()));
            assert_eq!(got.stream, want.stream);
            s.ack(got.records()).unwrap();
        }
        assert!(s.is_empty());
        assert_eq!(s.bytes(), 0);
        assert!(s.peek().unwrap().is_none());
    }

    #[test]
    fn a_restart_resumes_after_the_last_acknowledged_batch() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Spool::open(dir.path(), 1 << 30).unwrap();
            for i in 0..10 {
                s.push(&batch(i, 2)).unwrap();
            }
            for _ in 0..4 {
                let b = s.peek().unwrap().unwrap();
                s.ack(b.records()).unwrap();
            }
            // The 5th is handed out but never acknowledged (a crash mid-delivery).
            assert_eq!(s.peek().unwrap().unwrap().seq, 4);
        }
        let mut s = Spool::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(s.batches(), 6);
        s.push(&batch(10, 1)).unwrap();
        assert_eq!(drain(&mut s), (4..11).collect::<Vec<_>>());
        assert!(std::fs::read_dir(dir.path()).unwrap().count() <= 2);
    }

    #[test]
    fn the_bound_refuses_instead_of_growing_and_segments_roll() {
        let dir = tempfile::tempdir().unwrap();
        let one = encode(&batch(1, 100)).len() as u64;
        let mut s = Spool::open(dir.path(), one * 3).unwrap();
        assert!(s.push(&batch(1, 100)).unwrap());
        assert!(s.push(&batch(2, 100)).unwrap());
        assert!(s.push(&batch(4, 100)).unwrap());
        assert!(!s.push(&batch(5, 100)).unwrap(), "full");
        assert_eq!(drain(&mut s), vec![1, 2, 4]);
        assert!(s.push(&batch(5, 100)).unwrap(), "room again");

        // Many segments: a big spool rolls files and deletes delivered ones.
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 1 << 30).unwrap();
        let big = batch(7, 200_000);
        for _ in 0..4 {
            s.push(&big).unwrap();
        }
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert!(files >= 2, "{files} segment files");
        assert_eq!(drain(&mut s).len(), 4);
    }

    #[test]
    fn a_torn_frame_is_cut_off_not_read_as_records() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Spool::open(dir.path(), 1 << 30).unwrap();
            for i in 0..3 {
                s.push(&batch(i, 5)).unwrap();
            }
        }
        let seg = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "seg"))
            .unwrap();
        let len = std::fs::metadata(&seg).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - 10)
            .unwrap();
        let mut s = Spool::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(s.corrupt_frames(), 1);
        s.push(&batch(9, 1)).unwrap();
        assert_eq!(drain(&mut s), vec![0, 1, 9]);
    }
}
