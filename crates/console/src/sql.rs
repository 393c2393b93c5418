//! The SQL of every question, for both backends. User values never become SQL text: for
//! SQLite they are bound (`?`); for ClickHouse 18 (which has no query parameters) they are
//! rendered as typed literals from values already parsed and checked ([`crate::params`]):
//! numbers as numbers, addresses re-rendered from their parsed form, and text (of an alphabet
//! without quotes or backslashes) quoted and escaped all the same. Identifiers come only from
//! fixed lists.

use crate::params::Cidr;
use std::net::IpAddr;

/// Which SQL the backend speaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// The embedded store.
    Sqlite,
    /// ClickHouse (tables in this database; names checked as identifiers).
    ClickHouse {
        /// Database.
        db: String,
    },
}

/// A value of a query.
#[derive(Clone, Debug, PartialEq)]
pub enum Lit {
    /// An integer.
    Int(i64),
    /// A text.
    Text(String),
}

/// A statement and the values bound to its `?` (SQLite; empty for ClickHouse).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sql {
    /// The statement.
    pub text: String,
    /// Bound values, in order.
    pub binds: Vec<Lit>,
}

/// Builds one statement in a dialect.
pub struct Builder<'a> {
    d: &'a Dialect,
    sql: Sql,
}

impl<'a> Builder<'a> {
    /// An empty statement.
    pub fn new(d: &'a Dialect) -> Builder<'a> {
        Builder {
            d,
            sql: Sql::default(),
        }
    }

    /// Appends SQL text (only ever fixed text of this crate).
    pub fn push(&mut self, s: &str) -> &mut Self {
        self.sql.text.push_str(s);
        self
    }

    /// Appends a value: a `?` bound to it, or a typed literal.
    pub fn val(&mut self, v: Lit) -> &mut Self {
        match self.d {
            Dialect::Sqlite => {
                self.sql.text.push('?');
                self.sql.binds.push(v);
            }
            Dialect::ClickHouse { .. } => match v {
                Lit::Int(i) => self.sql.text.push_str(&i.to_string()),
                Lit::Text(t) => {
                    self.sql.text.push('\'');
                    for c in t.chars() {
                        match c {
                            '\'' => self.sql.text.push_str("\\'"),
                            '\\' => self.sql.text.push_str("\\\\"),
                            c if c.is_control() => {}
                            c => self.sql.text.push(c),
                        }
                    }
                    self.sql.text.push('\'');
                }
            },
        }
        self
    }

    /// Appends a table name (`flows`, `http`, `alerts`: fixed names).
    pub fn table(&mut self, name: &'static str) -> &mut Self {
        match self.d {
            Dialect::Sqlite => self.sql.text.push_str(&format!("\"{name}\"")),
            Dialect::ClickHouse { db } => self.sql.text.push_str(&format!("{db}.{name}")),
        }
        self
    }

    /// Appends a column name (fixed names).
    pub fn col(&mut self, name: &str) -> &mut Self {
        let q = match self.d {
            Dialect::Sqlite => format!("\"{name}\""),
            Dialect::ClickHouse { .. } => format!("`{name}`"),
        };
        self.sql.text.push_str(&q);
        self
    }

    /// The statement.
    pub fn finish(self) -> Sql {
        self.sql
    }

    /// The dialect.
    pub fn dialect(&self) -> &Dialect {
        self.d
    }

    /// Appends `(column is in cidr)`.
    pub fn in_cidr(&mut self, column: &str, c: &Cidr) -> &mut Self {
        if c.is_host() {
            self.push("(").col(column).push(" = ");
            return self.val(Lit::Text(c.addr.to_string())).push(")");
        }
        match self.d {
            Dialect::Sqlite => {
                self.push("ns_in(").col(column).push(", ");
                self.val(Lit::Text(c.addr.to_string()))
                    .push(", ")
                    .val(Lit::Int(c.bits.into()))
                    .push(")")
            }
            Dialect::ClickHouse { .. } => match c.addr {
                IpAddr::V4(a) => {
                    let m = mask4(c.bits);
                    self.push("(position(")
                        .col(column)
                        .push(", ':') = 0 AND bitAnd(IPv4StringToNum(");
                    self.col(column)
                        .push(&format!("), {m}) = {})", u32::from(a) & m))
                }
                IpAddr::V6(_) => {
                    let cut = 16 - c.bits / 8;
                    self.push("(position(")
                        .col(column)
                        .push(", ':') > 0 AND cutIPv6(IPv6StringToNum(");
                    self.col(column)
                        .push(&format!("), {cut}, 0) = cutIPv6(IPv6StringToNum("));
                    self.val(Lit::Text(c.addr.to_string()))
                        .push(&format!("), {cut}, 0))"))
                }
            },
        }
    }

    /// Appends the prefix of an address column as text (`10.1.2.0/24`, `2001:db8::/64`).
    pub fn prefix(&mut self, column: &str, v4: u8, v6: u8) -> &mut Self {
        match self.d {
            Dialect::Sqlite => self
                .push("ns_prefix(")
                .col(column)
                .push(&format!(", {v4}, {v6})")),
            Dialect::ClickHouse { .. } => {
                let m = mask4(v4);
                let cut = 16 - v6 / 8;
                self.push("if(position(")
                    .col(column)
                    .push(", ':') = 0, concat(IPv4NumToString(toUInt32(bitAnd(IPv4StringToNum(");
                self.col(column).push(&format!(
                    "), {m}))), '/{v4}'), concat(cutIPv6(IPv6StringToNum("
                ));
                self.col(column).push(&format!("), {cut}, 0), '/{v6}'))"))
            }
        }
    }

    /// Appends `count(DISTINCT column)`.
    pub fn distinct(&mut self, column: &str) -> &mut Self {
        match self.d {
            Dialect::Sqlite => self.push("count(DISTINCT ").col(column).push(")"),
            Dialect::ClickHouse { .. } => self.push("uniqExact(").col(column).push(")"),
        }
    }

    /// Appends the start of the `step`-second bucket of a time column.
    pub fn bucket(&mut self, column: &str, step: u64) -> &mut Self {
        match self.d {
            Dialect::Sqlite => self
                .push("((")
                .col(column)
                .push(&format!(" / {step}) * {step})")),
            Dialect::ClickHouse { .. } => self
                .push("(intDiv(toUInt32(")
                .col(column)
                .push(&format!("), {step}) * {step})")),
        }
    }

    /// Appends `column` starts with `prefix`.
    pub fn starts_with(&mut self, column: &str, prefix: &str) -> &mut Self {
        match self.d {
            Dialect::Sqlite => {
                self.push("substr(").col(column).push(", 1, ");
                self.val(Lit::Int(prefix.chars().count() as i64))
                    .push(") = ")
                    .val(Lit::Text(prefix.to_string()))
            }
            Dialect::ClickHouse { .. } => {
                self.push("startsWith(").col(column).push(", ");
                self.val(Lit::Text(prefix.to_string())).push(")")
            }
        }
    }

    /// Appends a sum that is a number in both dialects (`sum(a + b)`).
    pub fn sum2(&mut self, a: &str, b: &str) -> &mut Self {
        self.push("sum(").col(a).push(" + ").col(b).push(")")
    }
}

fn mask4(bits: u8) -> u32 {
    if bits == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(bits.min(32)))
    }
}

/// The SQLite functions the store's queries use: `ns_prefix(ip, v4, v6)` (the prefix of an
/// address as text) and `ns_in(ip, net, bits)` (1 when the address is in the prefix).
pub fn register_sqlite_functions(c: &rusqlite::Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    let f = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    c.create_scalar_function("ns_prefix", 3, f, |ctx| {
        let ip: Option<String> = ctx.get(0)?;
        let v4: i64 = ctx.get(1)?;
        let v6: i64 = ctx.get(2)?;
        Ok(ip.and_then(|s| s.parse::<IpAddr>().ok()).map(|a| {
            let bits = if a.is_ipv4() { v4 } else { v6 }.clamp(0, 128) as u8;
            format!("{}/{bits}", crate::params::mask(a, bits))
        }))
    })?;
    c.create_scalar_function("ns_in", 3, f, |ctx| {
        let ip: Option<String> = ctx.get(0)?;
        let net: String = ctx.get(1)?;
        let bits: i64 = ctx.get(2)?;
        let (Some(a), Ok(n)) = (
            ip.and_then(|s| s.parse::<IpAddr>().ok()),
            net.parse::<IpAddr>(),
        ) else {
            return Ok(0i64);
        };
        let b = bits.clamp(0, 128) as u8;
        Ok(i64::from(
            a.is_ipv4() == n.is_ipv4() && crate::params::mask(a, b) == n,
        ))
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_bound_in_sqlite_and_typed_literals_in_clickhouse() {
        let d = Dialect::Sqlite;
        let mut b = Builder::new(&d);
        b.push("SELECT 1 FROM ")
            .table("http")
            .push(" WHERE ")
            .col("host")
            .push(" = ");
        b.val(Lit::Text("x' OR 1=1 --".into()));
        let s = b.finish();
        assert_eq!(s.text, "SELECT 1 FROM \"http\" WHERE \"host\" = ?");
        assert_eq!(s.binds, vec![Lit::Text("x' OR 1=1 --".into())]);
        let d = Dialect::ClickHouse { db: "nsp".into() };
        let mut b = Builder::new(&d);
        b.push("SELECT 1 FROM ")
            .table("http")
            .push(" WHERE ")
            .col("host")
            .push(" = ");
        b.val(Lit::Text("x' OR \\1=1".into()));
        let s = b.finish();
        assert_eq!(
            s.text,
            "SELECT 1 FROM nsp.http WHERE `host` = 'x\\' OR \\\\1=1'"
        );
        assert!(s.binds.is_empty());
    }

    #[test]
    fn sqlite_prefix_functions() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        register_sqlite_functions(&c).unwrap();
        let s: String = c
            .query_row("SELECT ns_prefix('10.1.2.3', 24, 64)", [], |r| r.get(0))
            .unwrap();
        assert_eq!(s, "10.1.2.0/24");
        let s: String = c
            .query_row("SELECT ns_prefix('2001:db8:1:2::5', 24, 48)", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(s, "2001:db8:1::/48");
        let n: i64 = c
            .query_row(
                "SELECT ns_in('10.1.2.3', '10.0.0.0', 8) + ns_in('11.1.2.3', '10.0.0.0', 8) + ns_in('::1', '10.0.0.0', 0)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1);
    }
}
