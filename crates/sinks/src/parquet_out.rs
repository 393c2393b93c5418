//! Parquet output: records are buffered as flattened rows and written in row groups through
//! arrow's `ArrowWriter` (zstd). Column types come from the first row group: booleans,
//! 64-bit integers, floats, and UTF-8 for strings, nested arrays and columns that were all null.

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde_json::Value;
use std::io::Write;
use std::sync::Arc;

/// Rows per row group (bounds memory while buffering).
const ROW_GROUP: usize = 65_536;

/// Buffered state of one Parquet output.
pub(crate) struct ParquetOut<W: Write + Send> {
    fields: Vec<String>,
    rows: Vec<Vec<Value>>,
    schema: Option<Arc<Schema>>,
    sink: Option<W>,
    writer: Option<ArrowWriter<W>>,
}

fn column_type(rows: &[Vec<Value>], col: usize) -> DataType {
    let mut ty: Option<DataType> = None;
    for r in rows {
        let t = match &r[col] {
            Value::Null => continue,
            Value::Bool(_) => DataType::Boolean,
            Value::Number(n) if n.is_i64() => DataType::Int64,
            Value::Number(n) if n.is_u64() => DataType::UInt64,
            Value::Number(_) => DataType::Float64,
            _ => DataType::Utf8,
        };
        ty = Some(match (ty, t) {
            (None, t) => t,
            (Some(a), b) if a == b => a,
            (Some(DataType::Int64 | DataType::UInt64), DataType::UInt64 | DataType::Int64) => {
                DataType::UInt64
            }
            (
                Some(DataType::Int64 | DataType::UInt64 | DataType::Float64),
                DataType::Float64 | DataType::Int64 | DataType::UInt64,
            ) => DataType::Float64,
            _ => DataType::Utf8,
        });
    }
    ty.unwrap_or(DataType::Utf8)
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

impl<W: Write + Send> ParquetOut<W> {
    /// Starts an output with the given column names (dotted for nested fields).
    pub(crate) fn new(sink: W, fields: Vec<String>) -> Self {
        ParquetOut {
            fields,
            rows: Vec::new(),
            schema: None,
            sink: Some(sink),
            writer: None,
        }
    }

    /// Buffers one row (values in `fields` order); writes a row group when enough are buffered.
    pub(crate) fn push(&mut self, row: Vec<Value>) -> Result<(), parquet::errors::ParquetError> {
        self.rows.push(row);
        if self.rows.len() >= ROW_GROUP {
            self.write_rows()?;
        }
        Ok(())
    }

    fn write_rows(&mut self) -> Result<(), parquet::errors::ParquetError> {
        if self.schema.is_none() {
            let fields: Vec<Field> = (0..self.fields.len())
                .map(|c| Field::new(&self.fields[c], column_type(&self.rows, c), true))
                .collect();
            let schema = Arc::new(Schema::new(fields));
            let props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::default()))
                .build();
            let sink = self
                .sink
                .take()
                .expect("sink present until the writer is made");
            self.writer = Some(ArrowWriter::try_new(sink, schema.clone(), Some(props))?);
            self.schema = Some(schema);
        }
        if self.rows.is_empty() {
            return Ok(());
        }
        let schema = self.schema.clone().expect("set above");
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(self.fields.len());
        for (c, f) in schema.fields().iter().enumerate() {
            let col = self.rows.iter().map(|r| &r[c]);
            let arr: ArrayRef = match f.data_type() {
                DataType::Boolean => {
                    let mut b = BooleanBuilder::new();
                    col.for_each(|v| b.append_option(v.as_bool()));
                    Arc::new(b.finish())
                }
                DataType::Int64 => {
                    let mut b = Int64Builder::new();
                    col.for_each(|v| b.append_option(v.as_i64()));
                    Arc::new(b.finish())
                }
                DataType::UInt64 => {
                    let mut b = UInt64Builder::new();
                    col.for_each(|v| b.append_option(v.as_u64()));
                    Arc::new(b.finish())
                }
                DataType::Float64 => {
                    let mut b = Float64Builder::new();
                    col.for_each(|v| b.append_option(v.as_f64()));
                    Arc::new(b.finish())
                }
                _ => {
                    let mut b = StringBuilder::new();
                    col.for_each(|v| b.append_option(text(v)));
                    Arc::new(b.finish())
                }
            };
            cols.push(arr);
        }
        let batch = RecordBatch::try_new(schema, cols)?;
        self.writer.as_mut().expect("made above").write(&batch)?;
        self.rows.clear();
        Ok(())
    }

    /// Writes buffered rows and the Parquet footer; returns the byte stream for closing.
    pub(crate) fn finish(mut self) -> Result<W, parquet::errors::ParquetError> {
        self.write_rows()?;
        match self.writer.take() {
            Some(w) => w.into_inner(),
            None => Ok(self.sink.take().expect("sink present without a writer")),
        }
    }
}
