//! The web page: one HTML file, one script and one style sheet, embedded in the binary (no
//! CDN, nothing fetched from elsewhere); charts are SVG drawn by the script.

/// The page.
pub const INDEX: &str = include_str!("page/index.html");
/// Its script.
pub const APP_JS: &str = include_str!("page/app.js");
/// Its style sheet.
pub const APP_CSS: &str = include_str!("page/app.css");
