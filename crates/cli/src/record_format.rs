//! The `--format` choice of the commands that write records (`flows`, `http`).

use clap::ValueEnum;
use netspectra_sinks::RecordFormat;

/// Record output format on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RecordFormatArg {
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header row.
    Csv,
    /// Tab-separated values with a header row.
    Tsv,
    /// Apache Parquet (needs a build with the `parquet` feature).
    Parquet,
}

impl From<RecordFormatArg> for RecordFormat {
    fn from(a: RecordFormatArg) -> Self {
        match a {
            RecordFormatArg::Jsonl => RecordFormat::JsonLines,
            RecordFormatArg::Csv => RecordFormat::Csv,
            RecordFormatArg::Tsv => RecordFormat::Tsv,
            RecordFormatArg::Parquet => RecordFormat::Parquet,
        }
    }
}
