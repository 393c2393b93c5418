//! Record writers for analysis output. Records are any `serde::Serialize` struct; the writer
//! turns them into JSON lines (default, one object per line) or CSV/TSV with a header row and
//! optional column selection (like httpry's format string). Writers are buffered and must be
//! `finish`ed so that everything reaches the file.
//!
//! Records here are per flow or per transaction, never per packet, so converting a record to a
//! JSON value for CSV output is off the packet hot path.
//!
//! Raw packets have their own output, [`capture_files`]: rotating live pcap/pcapng files.

use serde::Serialize;
use serde_json::{Map, Value};
use std::io::{self, BufWriter, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

pub mod capture_files;
pub mod delivery;
pub mod file_sink;
pub mod json;
pub mod outputs;
#[cfg(feature = "parquet")]
mod parquet_out;
pub mod sink;
pub mod spool;
pub mod stream;

/// True when this build writes Parquet (the cargo feature `parquet`).
pub fn parquet_enabled() -> bool {
    cfg!(feature = "parquet")
}

/// Output format of a record stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RecordFormat {
    /// One JSON object per line.
    #[default]
    JsonLines,
    /// Comma-separated values with a header row (RFC 4180 quoting).
    Csv,
    /// Tab-separated values with a header row (tabs/newlines in values become spaces).
    Tsv,
    /// Apache Parquet (zstd); needs the cargo feature `parquet`.
    Parquet,
}

impl RecordFormat {
    /// Parses `jsonl`/`json`, `csv`, `tsv`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "jsonl" | "json" | "ndjson" => Some(RecordFormat::JsonLines),
            "csv" => Some(RecordFormat::Csv),
            "tsv" => Some(RecordFormat::Tsv),
            "parquet" => Some(RecordFormat::Parquet),
            _ => None,
        }
    }

    /// Conventional file extension.
    pub fn extension(self) -> &'static str {
        match self {
            RecordFormat::JsonLines => "jsonl",
            RecordFormat::Csv => "csv",
            RecordFormat::Tsv => "tsv",
            RecordFormat::Parquet => "parquet",
        }
    }
}

/// Errors of record writers.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Creating or writing the output failed.
    #[error("{path}: {source}")]
    Io {
        /// The output (`-` for standard output).
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A record could not be serialized.
    #[error("{path}: cannot serialize record: {source}")]
    Serialize {
        /// The output.
        path: PathBuf,
        /// The serializer error.
        #[source]
        source: serde_json::Error,
    },
    /// Records known only as JSON lines cannot be written as CSV, TSV or Parquet.
    #[error("{path}: records kept only as JSON lines cannot be written in this format")]
    NotTyped {
        /// The output.
        path: PathBuf,
    },
    /// Parquet output was requested from a build without the `parquet` feature.
    #[error("Parquet output needs a build with the `parquet` feature (cargo build --release --features parquet)")]
    ParquetDisabled,
    /// The Parquet encoder failed.
    #[error("{path}: parquet: {message}")]
    Parquet {
        /// The output.
        path: PathBuf,
        /// The encoder's message.
        message: String,
    },
    /// A selected column is not a field of the records.
    #[error("unknown field '{field}' (available: {available})")]
    UnknownField {
        /// The requested name.
        field: String,
        /// Comma-separated field names of the record type.
        available: String,
    },
}

/// Where a complete output goes: standard output, a file that appears under its name only when
/// complete ([`outputs::AtomicFile`]), or any other byte stream.
pub enum Destination {
    /// Standard output (`-`).
    Stdout(io::Stdout),
    /// A file written under a temporary name and renamed into place when complete.
    File(outputs::AtomicFile),
    /// Any stream (tests, pipes made by the caller).
    Writer(Box<dyn Write + Send>),
}

impl Destination {
    /// `-` is standard output; anything else a new [`outputs::AtomicFile`] (parent folders
    /// made). Nothing is visible under `path` until [`Destination::complete`].
    pub fn open(path: &Path) -> Result<Destination, SinkError> {
        if path.as_os_str() == "-" {
            return Ok(Destination::Stdout(io::stdout()));
        }
        outputs::AtomicFile::create(path)
            .map(Destination::File)
            .map_err(|e| SinkError::Io {
                path: path.to_path_buf(),
                source: e,
            })
    }

    /// The output is complete: a file is renamed into place. Returns the file's path.
    pub fn complete(self) -> io::Result<Option<PathBuf>> {
        match self {
            Destination::File(f) => f.commit().map(Some),
            mut other => other.flush().map(|()| None),
        }
    }

    /// The run stopped before its input ended: a file is kept as `<name>.partial`, never
    /// under the name that promises a complete result. Returns that path.
    pub fn partial(self) -> io::Result<Option<PathBuf>> {
        match self {
            Destination::File(f) => f.keep_partial().map(Some),
            mut other => other.flush().map(|()| None),
        }
    }
}

impl Write for Destination {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Destination::Stdout(s) => s.write(buf),
            Destination::File(f) => f.write(buf),
            Destination::Writer(w) => w.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Destination::Stdout(s) => s.write_vectored(bufs),
            Destination::File(f) => f.write_vectored(bufs),
            Destination::Writer(w) => w.write_vectored(bufs),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Destination::Stdout(s) => s.write_all(buf),
            Destination::File(f) => f.write_all(buf),
            Destination::Writer(w) => w.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Destination::Stdout(s) => s.flush(),
            Destination::File(f) => f.flush(),
            Destination::Writer(w) => w.flush(),
        }
    }
}

/// Opens an output for a complete result (see [`Destination::open`]); kept under the name
/// older callers use.
pub fn create_output(path: &Path) -> Result<Destination, SinkError> {
    Destination::open(path)
}

/// A buffered writer of records of type `T`.
pub struct RecordWriter<T: Serialize> {
    out: BufWriter<Destination>,
    #[cfg(feature = "parquet")]
    parquet: Option<parquet_out::ParquetOut<BufWriter<Destination>>>,
    path: PathBuf,
    format: RecordFormat,
    fields: Option<Vec<String>>,
    header_done: bool,
    records: u64,
    line: String,
    /// One JSON line being built (reused).
    buf: Vec<u8>,
    _t: PhantomData<fn(&T)>,
}

impl<T: Serialize> RecordWriter<T> {
    /// Starts `path` (making parent folders): the file appears under its name, replacing an
    /// older one, only when [`RecordWriter::finish`] completes; `-` writes to standard output.
    pub fn create(path: impl AsRef<Path>, format: RecordFormat) -> Result<Self, SinkError> {
        let path = path.as_ref();
        if format == RecordFormat::Parquet && !cfg!(feature = "parquet") {
            return Err(SinkError::ParquetDisabled);
        }
        Ok(Self::to_destination(path, Destination::open(path)?, format))
    }

    /// Writes to any byte stream; `name` is used in error messages.
    pub fn to_writer(
        name: impl AsRef<Path>,
        out: Box<dyn Write + Send>,
        format: RecordFormat,
    ) -> Self {
        Self::to_destination(name, Destination::Writer(out), format)
    }

    /// Writes to a [`Destination`]; `name` is used in error messages.
    pub fn to_destination(name: impl AsRef<Path>, out: Destination, format: RecordFormat) -> Self {
        RecordWriter {
            out: BufWriter::with_capacity(256 << 10, out),
            #[cfg(feature = "parquet")]
            parquet: None,
            path: name.as_ref().to_path_buf(),
            format,
            fields: None,
            header_done: false,
            records: 0,
            line: String::new(),
            buf: Vec::with_capacity(1024),
            _t: PhantomData,
        }
    }

    /// Selects and orders the columns (CSV/TSV) or keys (JSON) to write; nested fields are
    /// named with dots (`request.host`). Unknown names are reported on the first record.
    pub fn with_fields(mut self, fields: Vec<String>) -> Self {
        self.fields = Some(fields);
        self
    }

    fn io(&self, e: io::Error) -> SinkError {
        SinkError::Io {
            path: self.path.clone(),
            source: e,
        }
    }

    /// Writes one record whose type can render its own JSON line: JSON lines without a field
    /// selection take `render` (which must append the bytes `serde_json` would write for the
    /// record, and the newline), every other format serializes `make()`. Lets a hot record
    /// type skip serde and the strings it would build only for serde.
    pub fn write_rendered(
        &mut self,
        render: impl FnOnce(&mut Vec<u8>),
        make: impl FnOnce() -> T,
    ) -> Result<(), SinkError> {
        if !self.whole_json_lines() {
            return self.write(&make());
        }
        self.put_line(|buf| {
            render(buf);
            Ok(())
        })
    }

    /// True when each record is one whole JSON line (no field selection).
    fn whole_json_lines(&self) -> bool {
        self.format == RecordFormat::JsonLines && self.fields.is_none()
    }

    /// Renders one line into the reused buffer and writes it as the next record.
    fn put_line(
        &mut self,
        render: impl FnOnce(&mut Vec<u8>) -> Result<(), json::Error>,
    ) -> Result<(), SinkError> {
        self.buf.clear();
        render(&mut self.buf).map_err(|e| SinkError::Serialize {
            path: self.path.clone(),
            source: e,
        })?;
        let buf = std::mem::take(&mut self.buf);
        let r = self.out.write_all(&buf).map_err(|e| self.io(e));
        self.buf = buf;
        r?;
        self.records += 1;
        Ok(())
    }

    /// True when [`RecordWriter::write_raw_lines`] can be used (JSON lines, every field).
    pub fn takes_raw_lines(&self) -> bool {
        self.whole_json_lines()
    }

    /// Writes `records` records given as the JSON lines this writer would render for them (a
    /// batch read back from a spool). Only JSON lines without a field selection can take them.
    pub fn write_raw_lines(&mut self, lines: &[u8], records: u64) -> Result<(), SinkError> {
        if !self.whole_json_lines() {
            return Err(SinkError::NotTyped {
                path: self.path.clone(),
            });
        }
        self.out.write_all(lines).map_err(|e| self.io(e))?;
        self.records += records;
        Ok(())
    }

    /// Writes one record.
    pub fn write(&mut self, rec: &T) -> Result<(), SinkError> {
        if self.whole_json_lines() {
            return self.put_line(|buf| {
                json::to_vec(buf, rec)?;
                buf.push(b'\n');
                Ok(())
            });
        }
        let v = serde_json::to_value(rec).map_err(|e| SinkError::Serialize {
            path: self.path.clone(),
            source: e,
        })?;
        let mut flat = Vec::new();
        flatten("", &v, &mut flat);
        if self.fields.is_none() {
            self.fields = Some(flat.iter().map(|(k, _)| k.clone()).collect());
        }
        let fields = self.fields.as_ref().expect("set above");
        if !self.header_done {
            for f in fields {
                if !flat.iter().any(|(k, _)| k == f) {
                    return Err(SinkError::UnknownField {
                        field: f.clone(),
                        available: flat
                            .iter()
                            .map(|(k, _)| k.as_str())
                            .collect::<Vec<_>>()
                            .join(","),
                    });
                }
            }
        }
        self.line.clear();
        match self.format {
            RecordFormat::Parquet => {
                #[cfg(feature = "parquet")]
                {
                    let row: Vec<Value> = fields
                        .iter()
                        .map(|f| {
                            flat.iter()
                                .find(|(k, _)| k == f)
                                .map(|(_, v)| (*v).clone())
                                .unwrap_or(Value::Null)
                        })
                        .collect();
                    if self.parquet.is_none() {
                        let sink = std::mem::replace(
                            &mut self.out,
                            BufWriter::new(Destination::Writer(Box::new(io::sink()))),
                        );
                        self.parquet = Some(parquet_out::ParquetOut::new(sink, fields.clone()));
                    }
                    let path = self.path.clone();
                    self.parquet
                        .as_mut()
                        .expect("made above")
                        .push(row)
                        .map_err(|e| SinkError::Parquet {
                            path,
                            message: e.to_string(),
                        })?;
                    self.header_done = true;
                    self.records += 1;
                    return Ok(());
                }
                #[cfg(not(feature = "parquet"))]
                return Err(SinkError::ParquetDisabled);
            }
            RecordFormat::JsonLines => {
                let mut m = Map::new();
                for f in fields {
                    let val = flat
                        .iter()
                        .find(|(k, _)| k == f)
                        .map(|(_, v)| (*v).clone())
                        .unwrap_or(Value::Null);
                    m.insert(f.clone(), val);
                }
                self.line.push_str(&Value::Object(m).to_string());
            }
            RecordFormat::Csv | RecordFormat::Tsv => {
                let sep = if self.format == RecordFormat::Csv {
                    ','
                } else {
                    '\t'
                };
                if !self.header_done {
                    let header: Vec<String> = fields.iter().map(|f| cell(f, self.format)).collect();
                    self.line.push_str(&header.join(&sep.to_string()));
                    self.line.push('\n');
                }
                for (i, f) in fields.iter().enumerate() {
                    if i > 0 {
                        self.line.push(sep);
                    }
                    if let Some((_, v)) = flat.iter().find(|(k, _)| k == f) {
                        let text = match v {
                            Value::Null => String::new(),
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        self.line.push_str(&cell(&text, self.format));
                    }
                }
            }
        }
        self.line.push('\n');
        self.header_done = true;
        let line = std::mem::take(&mut self.line);
        let r = self.out.write_all(line.as_bytes()).map_err(|e| self.io(e));
        self.line = line;
        r?;
        self.records += 1;
        Ok(())
    }

    /// Number of records written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Flushes buffered output (e.g. on a signal) without closing.
    pub fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|e| self.io(e))
    }

    /// Flushes and closes a complete output (a file is renamed into place); returns the number
    /// of records written.
    pub fn finish(self) -> Result<u64, SinkError> {
        self.close(false).map(|(n, _)| n)
    }

    /// Flushes and closes the output of a run that stopped before its input ended: a file is
    /// kept as `<name>.partial` (returned) instead of under its name.
    pub fn finish_partial(self) -> Result<(u64, Option<PathBuf>), SinkError> {
        self.close(true)
    }

    fn close(mut self, partial: bool) -> Result<(u64, Option<PathBuf>), SinkError> {
        let path = self.path.clone();
        let io_err = |e: io::Error| SinkError::Io {
            path: path.clone(),
            source: e,
        };
        let out = match () {
            #[cfg(feature = "parquet")]
            () if self.parquet.is_some() => {
                let p = self.parquet.take().expect("checked");
                p.finish().map_err(|e| SinkError::Parquet {
                    path: path.clone(),
                    message: e.to_string(),
                })?
            }
            () => std::mem::replace(
                &mut self.out,
                BufWriter::new(Destination::Writer(Box::new(io::sink()))),
            ),
        };
        let dest = out.into_inner().map_err(|e| io_err(e.into_error()))?;
        let kept = if partial {
            dest.partial()
        } else {
            dest.complete()
        }
        .map_err(io_err)?;
        Ok((self.records, kept))
    }
}

/// Flattens nested objects into dotted keys, keeping field order.
fn flatten<'a>(prefix: &str, v: &'a Value, out: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Object(m) => {
            for (k, val) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                if val.is_object() {
                    flatten(&key, val, out);
                } else {
                    out.push((key, val));
                }
            }
        }
        other => out.push((prefix.to_string(), other)),
    }
}

/// Quotes one CSV cell when needed (RFC 4180); TSV cells get tabs/newlines replaced.
fn cell(s: &str, format: RecordFormat) -> String {
    match format {
        RecordFormat::Tsv => s.replace(['\t', '\n', '\r'], " "),
        _ => {
            if s.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.to_string()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Serialize)]
    struct Inner {
        host: String,
    }

    #[derive(Serialize)]
    struct Rec {
        name: Option<String>,
        id: u32,
        req: Inner,
    }

    /// A Write that keeps what was written, shared with the test.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn recs() -> Vec<Rec> {
        vec![
            Rec {
                id: 1,
                name: Some("a,\"b\"".into()),
                req: Inner {
                    host: "x.example".into(),
                },
            },
            Rec {
                id: 2,
                name: None,
                req: Inner {
                    host: "y\tz".into(),
                },
            },
        ]
    }

    fn render(format: RecordFormat, fields: Option<Vec<&str>>) -> Result<String, SinkError> {
        let sink = Sink::default();
        let mut w = RecordWriter::<Rec>::to_writer("mem", Box::new(sink.clone()), format);
        if let Some(f) = fields {
            w = w.with_fields(f.into_iter().map(String::from).collect());
        }
        for r in recs() {
            w.write(&r)?;
        }
        assert_eq!(w.finish()?, 2);
        let bytes = sink.0.lock().unwrap().clone();
        Ok(String::from_utf8(bytes).unwrap())
    }

    #[test]
    fn json_lines_round_trip() {
        let s = render(RecordFormat::JsonLines, None).unwrap();
        let lines: Vec<Value> = s
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["req"]["host"], "x.example");
        assert_eq!(lines[1]["name"], Value::Null);
    }

    #[test]
    fn csv_quotes_and_flattens() {
        let s = render(RecordFormat::Csv, None).unwrap();
        assert_eq!(
            s,
            "name,id,req.host\n\"a,\"\"b\"\"\",1,x.example\n,2,y\tz\n"
        );
    }

    #[test]
    fn tsv_with_selected_fields_and_unknown_field_error() {
        let s = render(RecordFormat::Tsv, Some(vec!["req.host", "id"])).unwrap();
        assert_eq!(s, "req.host\tid\nx.example\t1\ny z\t2\n");
        let j = render(RecordFormat::JsonLines, Some(vec!["id"])).unwrap();
        assert_eq!(j, "{\"id\":1}\n{\"id\":2}\n");
        let e = render(RecordFormat::Csv, Some(vec!["nope"])).unwrap_err();
        assert!(e.to_string().contains("unknown field 'nope'"), "{e}");
    }

    /// A pre-rendered line is used only where it stands for the whole record: JSON lines
    /// without a field selection. Other formats and field selections serialize the record.
    #[test]
    fn rendered_lines_only_for_whole_json_lines() {
        let write = |format, fields: Option<Vec<&str>>| {
            let sink = Sink::default();
            let mut w = RecordWriter::<Rec>::to_writer("mem", Box::new(sink.clone()), format);
            if let Some(f) = fields {
                w = w.with_fields(f.into_iter().map(String::from).collect());
            }
            for r in recs() {
                let id = r.id;
                w.write_rendered(
                    |out| out.extend_from_slice(format!("R{id}\n").as_bytes()),
                    || r,
                )
                .unwrap();
            }
            assert_eq!(w.finish().unwrap(), 2);
            let bytes = sink.0.lock().unwrap().clone();
            String::from_utf8(bytes).unwrap()
        };
        assert_eq!(write(RecordFormat::JsonLines, None), "R1\nR2\n");
        assert_eq!(
            write(RecordFormat::Csv, None),
            render(RecordFormat::Csv, None).unwrap()
        );
        assert_eq!(
            write(RecordFormat::JsonLines, Some(vec!["id"])),
            "{\"id\":1}\n{\"id\":2}\n"
        );
    }

    #[test]
    fn create_makes_parent_folders() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("2024-01-01T00:00:00Z/src_ip.jsonl");
        let mut w = RecordWriter::<Rec>::create(&p, RecordFormat::JsonLines).unwrap();
        w.write(&recs()[0]).unwrap();
        w.finish().unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap().lines().count(), 1);
    }
}
