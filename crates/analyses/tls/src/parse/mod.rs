//! Zero-copy readers of the TLS handshake layer.

pub mod hello;
