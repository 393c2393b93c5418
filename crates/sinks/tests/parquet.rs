//! Parquet output read back with the parquet crate's own reader: same rows, same values, nulls
//! kept, types inferred per column. Runs only with `--features parquet`.
#![cfg(feature = "parquet")]

use arrow_array::{Array, Float64Array, Int64Array, StringArray};
use netspectra_sinks::{RecordFormat, RecordWriter};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;

#[derive(Serialize)]
struct Flow {
    id: i64,
    host: Option<String>,
    rate: f64,
    nested: Nested,
}

#[derive(Serialize)]
struct Nested {
    port: u16,
}

#[test]
fn parquet_round_trip_over_several_row_groups() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.parquet");
    let mut w = RecordWriter::<Flow>::create(&path, RecordFormat::Parquet).unwrap();
    let n = 150_000i64; // three row groups
    for i in 0..n {
        let host = (i % 3 != 0).then(|| format!("h{}", i % 7));
        w.write(&Flow {
            id: i,
            host,
            rate: i as f64 / 2.0,
            nested: Nested {
                port: (i % 65536) as u16,
            },
        })
        .unwrap();
    }
    assert_eq!(w.finish().unwrap(), n as u64);

    let file = std::fs::File::open(&path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut seen = 0i64;
    for batch in reader {
        let b = batch.unwrap();
        let names: Vec<_> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["id", "host", "rate", "nested.port"]);
        let id = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let host = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        let rate = b.column(2).as_any().downcast_ref::<Float64Array>().unwrap();
        for r in 0..b.num_rows() {
            let i = id.value(r);
            assert_eq!(i, seen);
            assert_eq!(host.is_null(r), i % 3 == 0);
            if !host.is_null(r) {
                assert_eq!(host.value(r), format!("h{}", i % 7));
            }
            assert_eq!(rate.value(r), i as f64 / 2.0);
            seen += 1;
        }
    }
    assert_eq!(seen, n);
}
