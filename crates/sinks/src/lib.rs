//! Record writers for analysis output: JSON lines, CSV and Parquet.
