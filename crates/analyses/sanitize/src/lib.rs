//! Capture sanitizer: dedup, prefix-preserving Crypto-PAn anonymization and payload masking in one streaming pass.
