//! Real-world vocabulary for generated HTTP, TLS and DNS: user agents, host names, paths,
//! servers, content types.

/// User-Agent strings of common browsers, mobile apps, bots and command-line clients.
pub const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36 Edg/119.0.2151.97",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.1; rv:120.0) Gecko/20100101 Firefox/120.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/118.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.43 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Android 13; Mobile; rv:120.0) Gecko/120.0 Firefox/120.0",
    "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Twitterbot/1.0",
    "curl/7.88.1",
    "curl/8.4.0",
    "Wget/1.21.3",
    "python-requests/2.31.0",
    "Go-http-client/1.1",
    "okhttp/4.12.0",
    "Apache-HttpClient/4.5.14 (Java/17.0.9)",
    "Dalvik/2.1.0 (Linux; U; Android 12; SM-A515F Build/SP1A.210812.016)",
    "Microsoft-CryptoAPI/10.0",
    "Debian APT-HTTP/1.3 (2.6.1)",
    "PostmanRuntime/7.35.0",
];

/// Host names used in HTTP Host headers, TLS SNI and DNS questions.
pub const HOSTS: &[&str] = &[
    "www.example.com",
    "example.com",
    "api.example.com",
    "cdn.example.net",
    "static.example.org",
    "img.example.net",
    "www.example.org",
    "shop.example.com",
    "login.example.com",
    "news.example.org",
    "media.example.net",
    "updates.example.com",
    "assets.example.org",
    "telemetry.example.net",
    "mail.example.com",
    "blog.example.org",
    "video.example.net",
    "search.example.com",
    "docs.example.org",
    "files.example.net",
    "ws.example.com",
    "metrics.example.org",
    "auth.example.net",
    "dav.example.com",
    "intranet.example.local",
    "printer.example.local",
    "wiki.example.local",
    "git.example.com",
    "packages.example.org",
    "ocsp.example.net",
];

/// URL paths (a query string is sometimes appended).
pub const PATHS: &[&str] = &[
    "/",
    "/index.html",
    "/favicon.ico",
    "/robots.txt",
    "/api/v1/users",
    "/api/v1/orders",
    "/api/v2/items/list",
    "/static/js/app.js",
    "/static/css/main.css",
    "/images/logo.png",
    "/images/banner.jpg",
    "/login",
    "/logout",
    "/search",
    "/products/view",
    "/cart/add",
    "/checkout",
    "/news/2023/11/article.html",
    "/downloads/setup.exe",
    "/feed.xml",
    "/sitemap.xml",
    "/health",
    "/metrics",
    "/upload",
    "/dav/documents/",
    "/wp-login.php",
    "/admin/",
    "/v1/telemetry",
    "/assets/fonts/roboto.woff2",
    "/ocsp",
];

/// Server header values.
pub const SERVERS: &[&str] = &[
    "nginx/1.24.0",
    "nginx",
    "Apache/2.4.58 (Ubuntu)",
    "Apache",
    "Microsoft-IIS/10.0",
    "cloudflare",
    "gws",
    "AmazonS3",
    "envoy",
    "LiteSpeed",
    "openresty/1.21.4.3",
    "Caddy",
];

/// Referer values.
pub const REFERERS: &[&str] = &[
    "https://www.google.com/",
    "https://www.bing.com/",
    "http://www.example.com/",
    "http://www.example.org/index.html",
    "https://news.example.org/",
    "http://shop.example.com/products/view",
];

/// Accept header values.
pub const ACCEPTS: &[&str] = &[
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
    "*/*",
    "application/json",
    "application/json, text/plain, */*",
    "image/avif,image/webp,image/apng,image/*,*/*;q=0.8",
    "text/css,*/*;q=0.1",
];

/// Accept-Language header values.
pub const LANGS: &[&str] = &[
    "en-US,en;q=0.9",
    "en-GB,en;q=0.8",
    "de-DE,de;q=0.9,en;q=0.8",
    "fr-FR,fr;q=0.9",
    "ja,en-US;q=0.7",
];

/// Response content types whose bodies tshark does not parse structurally (bodies are text or
/// opaque bytes), plus JSON whose bodies are generated valid.
pub const TEXT_TYPES: &[&str] = &[
    "text/html; charset=utf-8",
    "text/plain",
    "text/css",
    "application/javascript",
];

/// Second-level labels for DNS CNAME targets.
pub const CDN_NAMES: &[&str] = &[
    "edge.example-cdn.net",
    "lb.example-cloud.com",
    "a1.example-edge.org",
];

/// Words for text bodies.
pub const WORDS: &[&str] = &[
    "lorem", "ipsum", "dolor", "sit", "amet", "network", "packet", "flow", "traffic", "engine",
    "capture", "stream", "header", "server", "client", "request", "response", "session", "data",
    "bytes", "port", "address", "route", "switch", "frame", "cable", "signal", "latency", "speed",
    "the", "a", "of", "and", "to", "in", "is", "for", "with", "on",
];
