//! Record streams into files: one file per stream (`flows.jsonl`, `http.jsonl`, ...) or a path
//! given for a stream (`-` for standard output), and one file per view snapshot
//! (`DIR/<interval start>/<view>.<ext>`), in JSON lines, CSV, TSV or Parquet. Optionally rotated
//! by size and age, keeping the newest N files of each stream. Every file appears under its name
//! only when complete (see [`crate::outputs::AtomicFile`]).

use crate::outputs::OutputPlan;
use crate::sink::{Closed, DeliverError, Routes, Sink};
use crate::stream::{Batch, Payload, StreamKind};
use crate::{Destination, RecordFormat, RecordWriter};
use netspectra_dns::DnsRecord;
use netspectra_flow::record::{dir_stamp, FlowRecord};
use netspectra_http::HttpRecord;
use netspectra_tls::TlsRecord;
use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// Rotation of a stream's file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Start a new file once this many bytes were written.
    pub max_bytes: Option<u64>,
    /// Start a new file after this long.
    pub max_age: Option<Duration>,
    /// Keep at most this many finished files per stream (oldest deleted).
    pub keep: Option<usize>,
}

impl Rotation {
    fn on(&self) -> bool {
        self.max_bytes.is_some() || self.max_age.is_some()
    }
}

/// Settings of a [`FileSink`].
#[derive(Clone, Debug)]
pub struct FileSinkConfig {
    /// Folder of per-stream files and view snapshots.
    pub dir: Option<PathBuf>,
    /// Explicit paths for some streams (`-`: standard output), instead of `DIR/<stream>.<ext>`.
    pub paths: Vec<(StreamKind, PathBuf)>,
    /// File format.
    pub format: RecordFormat,
    /// Columns (CSV/TSV) or keys (JSON) to write, for the record streams that have a
    /// selection (HTTP, TLS, DNS); the others write every field.
    pub fields: Vec<(StreamKind, Vec<String>)>,
    /// Rotation of per-stream files (not of view snapshots, one file each already).
    pub rotation: Rotation,
    /// The streams written.
    pub routes: Routes,
    /// After a write error, keep going with a new file on the next batch (a long-running
    /// probe: the failed file is kept as `NAME.partial` if it can be, its lost records are
    /// counted) instead of failing for good (a one-shot run, which then stops).
    pub keep_going: bool,
}

/// One stream's open file.
enum StreamFile {
    Flows(RecordWriter<FlowRecord>),
    Http(RecordWriter<HttpRecord>),
    Tls(RecordWriter<TlsRecord>),
    Dns(RecordWriter<DnsRecord>),
    /// JSON lines written as they come (streams without a typed form).
    Raw {
        out: BufWriter<Destination>,
        path: PathBuf,
        records: u64,
    },
}

struct Open {
    file: StreamFile,
    path: PathBuf,
    bytes: u64,
    opened: Instant,
}

/// A sink of files.
pub struct FileSink {
    cfg: FileSinkConfig,
    name: String,
    open: BTreeMap<StreamKind, Open>,
    /// Finished files per stream, oldest first (for retention).
    finished: BTreeMap<StreamKind, Vec<PathBuf>>,
    /// Every file written (for the summary).
    written: Vec<PathBuf>,
    /// Inputs that no file may replace (checked per view snapshot, whose names are made as the
    /// run goes).
    plan: Option<OutputPlan>,
    /// A write failed: the files are not finished (their temporary names are removed).
    broken: bool,
}

fn io_err(path: &Path, what: &str, e: impl std::fmt::Display) -> DeliverError {
    DeliverError::fatal(path.display().to_string(), format!("{what}: {e}"))
}

impl FileSink {
    /// A file sink; `inputs` are files no output may replace (view snapshot names are checked
    /// against them as they are made).
    pub fn new(cfg: FileSinkConfig, inputs: &[PathBuf]) -> FileSink {
        let name = match (&cfg.dir, cfg.paths.first()) {
            (Some(d), _) => d.display().to_string(),
            (None, Some((_, p))) => p.display().to_string(),
            (None, None) => "files".into(),
        };
        let plan = if inputs.is_empty() {
            None
        } else {
            let mut p = OutputPlan::new();
            for i in inputs {
                p.input(i);
            }
            Some(p)
        };
        FileSink {
            cfg,
            name,
            open: BTreeMap::new(),
            finished: BTreeMap::new(),
            written: Vec::new(),
            plan,
            broken: false,
        }
    }

    /// Where stream `k`'s current file goes, or `None` when the sink has no place for it.
    fn path_for(&self, k: StreamKind) -> Option<PathBuf> {
        if let Some((_, p)) = self.cfg.paths.iter().find(|(s, _)| *s == k) {
            return Some(if self.cfg.rotation.on() {
                stamped(p, SystemTime::now())
            } else {
                p.clone()
            });
        }
        let dir = self.cfg.dir.as_ref()?;
        let base = dir.join(format!("{}.{}", k.name(), self.cfg.format.extension()));
        Some(if self.cfg.rotation.on() {
            stamped(&base, SystemTime::now())
        } else {
            base
        })
    }

    /// A record writer for stream `k` at `path`, with the stream's field selection.
    fn writer<T: serde::Serialize>(
        &self,
        k: StreamKind,
        path: &Path,
    ) -> Result<RecordWriter<T>, DeliverError> {
        let mut w =
            RecordWriter::create(path, self.cfg.format).map_err(|e| io_err(path, "creating", e))?;
        if let Some((_, f)) = self.cfg.fields.iter().find(|(s, _)| *s == k) {
            w = w.with_fields(f.clone());
        }
        Ok(w)
    }

    fn file(&mut self, k: StreamKind) -> Result<Option<&mut Open>, DeliverError> {
        if !self.open.contains_key(&k) {
            let Some(path) = self.path_for(k) else {
                return Ok(None);
            };
            let fmt = self.cfg.format;
            let file = match k {
                StreamKind::Flows => StreamFile::Flows(
                    RecordWriter::create(&path, fmt).map_err(|e| io_err(&path, "creating", e))?,
                ),
                StreamKind::Http => StreamFile::Http(self.writer(k, &path)?),
                StreamKind::Tls => StreamFile::Tls(self.writer(k, &path)?),
                StreamKind::Dns => StreamFile::Dns(self.writer(k, &path)?),
                _ => StreamFile::Raw {
                    out: BufWriter::with_capacity(
                        256 << 10,
                        Destination::open(&path).map_err(|e| io_err(&path, "creating", e))?,
                    ),
                    path: path.clone(),
                    records: 0,
                },
            };
            self.open.insert(
                k,
                Open {
                    file,
                    path,
                    bytes: 0,
                    opened: Instant::now(),
                },
            );
        }
        Ok(self.open.get_mut(&k))
    }

    /// Closes stream `k`'s file (complete, or partial) and applies retention.
    fn finish(&mut self, k: StreamKind, complete: bool) -> Result<(), DeliverError> {
        let Some(o) = self.open.remove(&k) else {
            return Ok(());
        };
        let kept = match o.file {
            StreamFile::Flows(w) => close_writer(w, complete, &o.path)?,
            StreamFile::Http(w) => close_writer(w, complete, &o.path)?,
            StreamFile::Tls(w) => close_writer(w, complete, &o.path)?,
            StreamFile::Dns(w) => close_writer(w, complete, &o.path)?,
            StreamFile::Raw { out, path, .. } => {
                let d = out
                    .into_inner()
                    .map_err(|e| io_err(&path, "writing", e.into_error()))?;
                let r = if complete { d.complete() } else { d.partial() };
                r.map_err(|e| io_err(&path, "writing", e))?
            }
        };
        if let Some(p) = kept {
            self.written.push(p.clone());
            let list = self.finished.entry(k).or_default();
            list.push(p);
            if let Some(keep) = self.cfg.rotation.keep {
                while list.len() > keep.max(1) {
                    let old = list.remove(0);
                    let _ = std::fs::remove_file(&old);
                }
            }
        }
        Ok(())
    }

    fn write_snapshot(&mut self, s: &netspectra_flow::Snapshot) -> Result<(), DeliverError> {
        let Some(dir) = &self.cfg.dir else {
            return Ok(());
        };
        let path = dir.join(dir_stamp(s.start)).join(format!(
            "{}.{}",
            s.view,
            self.cfg.format.extension()
        ));
        if let Some(plan) = &mut self.plan {
            plan.output(&path)
                .map_err(|e| DeliverError::fatal(path.display().to_string(), e.to_string()))?;
        }
        if self.cfg.format == RecordFormat::JsonLines {
            // The common case: one pass over the rows, no serde per row.
            let mut out = BufWriter::with_capacity(
                256 << 10,
                Destination::open(&path).map_err(|e| io_err(&path, "creating", e))?,
            );
            s.write_jsonl(&mut out)
                .and_then(|()| out.flush())
                .map_err(|e| io_err(&path, "writing", e))?;
            out.into_inner()
                .map_err(|e| e.into_error())
                .and_then(|d| d.complete())
                .map_err(|e| io_err(&path, "writing", e))?;
        } else {
            let mut w =
                RecordWriter::<netspectra_flow::views::SnapRow<'_>>::create(&path, self.cfg.format)
                    .map_err(|e| io_err(&path, "creating", e))?;
            for i in 0..s.rows.len() {
                w.write(&s.row(i))
                    .map_err(|e| io_err(&path, "writing", e))?;
            }
            w.finish().map_err(|e| io_err(&path, "writing", e))?;
        }
        self.written.push(path);
        Ok(())
    }

    /// Records written to stream `k`'s current file so far.
    pub fn records(&self, k: StreamKind) -> u64 {
        match self.open.get(&k).map(|o| &o.file) {
            Some(StreamFile::Flows(w)) => w.records(),
            Some(StreamFile::Http(w)) => w.records(),
            Some(StreamFile::Tls(w)) => w.records(),
            Some(StreamFile::Dns(w)) => w.records(),
            Some(StreamFile::Raw { records, .. }) => *records,
            None => 0,
        }
    }
}

fn close_writer<T: serde::Serialize>(
    w: RecordWriter<T>,
    complete: bool,
    path: &Path,
) -> Result<Option<PathBuf>, DeliverError> {
    if complete {
        w.finish()
            .map(|_| (path.as_os_str() != "-").then(|| path.to_path_buf()))
            .map_err(|e| io_err(path, "writing", e))
    } else {
        w.finish_partial()
            .map(|(_, p)| p)
            .map_err(|e| io_err(path, "writing", e))
    }
}

/// `DIR/NAME.EXT` as `DIR/NAME-<UTC time>.EXT` (for rotated files).
fn stamped(p: &Path, t: SystemTime) -> PathBuf {
    let ns = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    let stem = p
        .file_stem()
        .map(|s| s.to_string_lossy())
        .unwrap_or_default();
    let name = match p.extension() {
        Some(e) => format!("{stem}-{}.{}", dir_stamp(ns), e.to_string_lossy()),
        None => format!("{stem}-{}", dir_stamp(ns)),
    };
    p.with_file_name(name)
}

impl Sink for FileSink {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn routes(&self) -> Routes {
        self.cfg.routes.clone()
    }

    fn takes_json(&self) -> bool {
        self.cfg.format == RecordFormat::JsonLines && self.cfg.fields.is_empty()
    }

    fn deliver(&mut self, b: &Batch) -> Result<(), DeliverError> {
        let r = self.write(b);
        if r.is_err() {
            if self.cfg.keep_going {
                // Close what can be closed; the next batch of the stream starts a new file.
                let k = b.stream.kind;
                if self.finish(k, false).is_err() {
                    self.open.remove(&k);
                }
            } else {
                self.broken = true;
            }
        }
        r
    }

    fn flush(&mut self) -> Result<(), DeliverError> {
        for o in self.open.values_mut() {
            let r = match &mut o.file {
                StreamFile::Flows(w) => w.flush().map_err(|e| e.to_string()),
                StreamFile::Http(w) => w.flush().map_err(|e| e.to_string()),
                StreamFile::Tls(w) => w.flush().map_err(|e| e.to_string()),
                StreamFile::Dns(w) => w.flush().map_err(|e| e.to_string()),
                StreamFile::Raw { out, .. } => out.flush().map_err(|e| e.to_string()),
            };
            r.map_err(|e| io_err(&o.path, "writing", e))?;
        }
        Ok(())
    }

    fn close(&mut self, complete: bool) -> Result<Closed, DeliverError> {
        if self.broken {
            // Nothing half-written stays: the temporary files go with their writers.
            self.open.clear();
            return Ok(Closed {
                files: std::mem::take(&mut self.written),
            });
        }
        // A path given for a stream holds its records even when there were none (an empty
        // file, as a writer opened at the start would have left).
        let declared: Vec<StreamKind> = self
            .cfg
            .paths
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| !self.open.contains_key(k) && !self.finished.contains_key(k))
            .collect();
        for k in declared {
            self.file(k)?;
        }
        let kinds: Vec<StreamKind> = self.open.keys().copied().collect();
        let mut first_err = None;
        for k in kinds {
            if let Err(e) = self.finish(k, complete) {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(Closed {
                files: std::mem::take(&mut self.written),
            }),
        }
    }
}

impl FileSink {
    fn write(&mut self, b: &Batch) -> Result<(), DeliverError> {
        if let Payload::Snapshot(s) = &b.payload {
            return self.write_snapshot(s);
        }
        let k = b.stream.kind;
        let rot = self.cfg.rotation.clone();
        if let Some(o) = self.open.get(&k) {
            let full = rot.max_bytes.is_some_and(|m| o.bytes >= m);
            let old = rot.max_age.is_some_and(|a| o.opened.elapsed() >= a);
            if full || old {
                self.finish(k, true)?;
            }
        }
        let Some(o) = self.file(k)? else {
            return Ok(());
        };
        let path = o.path.clone();
        let before = o.bytes;
        match (&mut o.file, &b.payload) {
            (StreamFile::Flows(w), Payload::Flows(v)) if w.takes_raw_lines() => {
                // The batch renders its JSON lines once, shared with every JSON sink.
                w.write_raw_lines(b.json(), v.len() as u64)
                    .map_err(|e| io_err(&path, "writing", e))?;
            }
            (StreamFile::Flows(w), Payload::Flows(v)) => {
                for f in v {
                    w.write_rendered(
                        |line| netspectra_flow::record::write_jsonl(f, line),
                        || FlowRecord::from_ended(f),
                    )
                    .map_err(|e| io_err(&path, "writing", e))?;
                }
            }
            (StreamFile::Http(w), Payload::Http(v)) => write_all(w, v, &path)?,
            (StreamFile::Tls(w), Payload::Tls(v)) => write_all(w, v, &path)?,
            (StreamFile::Dns(w), Payload::Dns(v)) => write_all(w, v, &path)?,
            (StreamFile::Raw { out, records, .. }, _) => {
                out.write_all(b.json())
                    .map_err(|e| io_err(&path, "writing", e))?;
                *records += b.records();
            }
            (StreamFile::Flows(w), Payload::Encoded { records }) => {
                raw_lines(w, b.json(), *records, &path)?
            }
            (StreamFile::Http(w), Payload::Encoded { records }) => {
                raw_lines(w, b.json(), *records, &path)?
            }
            (StreamFile::Tls(w), Payload::Encoded { records }) => {
                raw_lines(w, b.json(), *records, &path)?
            }
            (StreamFile::Dns(w), Payload::Encoded { records }) => {
                raw_lines(w, b.json(), *records, &path)?
            }
            _ => {
                return Err(DeliverError::fatal(
                    &self.name,
                    format!("stream {} carries records of another kind", b.stream),
                ))
            }
        }
        o.bytes = before + b.approx_bytes() as u64;
        Ok(())
    }
}

/// Writes typed records one by one (the writer applies the field selection and format).
fn write_all<T: serde::Serialize>(
    w: &mut RecordWriter<T>,
    v: &[T],
    path: &Path,
) -> Result<(), DeliverError> {
    for r in v {
        w.write(r).map_err(|e| io_err(path, "writing", e))?;
    }
    Ok(())
}

/// Writes records known only as their JSON lines (a batch read back from a spool).
fn raw_lines<T: serde::Serialize>(
    w: &mut RecordWriter<T>,
    lines: &[u8],
    records: u64,
    path: &Path,
) -> Result<(), DeliverError> {
    w.write_raw_lines(lines, records)
        .map_err(|e| io_err(path, "writing", e))
}

/// Record streams as JSON lines on standard output, one whole batch per write (lines of
/// different streams never interleave).
pub struct StdoutSink {
    routes: Routes,
}

impl StdoutSink {
    /// Writes the streams of `routes`.
    pub fn new(routes: Routes) -> StdoutSink {
        StdoutSink { routes }
    }
}

impl Sink for StdoutSink {
    fn name(&self) -> String {
        "stdout".into()
    }

    fn routes(&self) -> Routes {
        self.routes.clone()
    }

    fn deliver(&mut self, b: &Batch) -> Result<(), DeliverError> {
        let mut out = std::io::stdout().lock();
        out.write_all(b.json())
            .and_then(|()| out.flush())
            .map_err(|e| DeliverError::fatal("stdout", e.to_string()))
    }
}
