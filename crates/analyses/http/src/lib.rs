//! HTTP/1.x request/response metadata extraction from TCP payloads, with User-Agent parsing and pairing.
