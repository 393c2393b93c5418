//! Messages to transactions: a query opens an entry keyed by (client, server, protocol, id,
//! query name), its response closes it into a record; queries without a response are emitted
//! when they time out, responses without a query as orphans. Entries stay for the timeout after
//! their record so that duplicated frames and retransmissions are recognised, never recorded
//! twice.

use crate::config::DnsConfig;
use crate::names::{rcode_name, type_name};
use crate::parse::name::NameBuf;
use crate::parse::rdata::{render, NameWriter, PlainNames};
use crate::parse::{
    questions, read_opt, Edns, Header, Question, RrIter, Section, FLAG_AA, FLAG_AD, FLAG_CD,
    FLAG_RA, FLAG_RD, FLAG_TC, TYPE_OPT,
};
use crate::record::{DnsRecord, SectionRecords, Status};
use crate::summary::{DnsStats, Malformed};
use crate::table::{QueryInfo, Table, Txn, Which};
use netspectra_packet::{community_id_v1, FlowKey, Timestamp};
use std::hash::{BuildHasher, Hasher};

/// A response being turned into a record.
struct Response<'a> {
    msg: &'a [u8],
    h: Header,
    /// Offset of the answer section.
    rr_start: usize,
    ts: Timestamp,
}

/// The transaction table, counters and finished records of one analyzer.
pub(crate) struct Transactions {
    pub cfg: DnsConfig,
    table: Table,
    hasher: foldhash::fast::RandomState,
    pub stats: DnsStats,
    pub out: Vec<DnsRecord>,
}

impl Transactions {
    pub fn new(cfg: DnsConfig) -> Self {
        Transactions {
            table: Table::new(),
            hasher: foldhash::fast::RandomState::default(),
            stats: DnsStats::new(cfg.summary_keys),
            out: Vec::new(),
            cfg,
        }
    }

    /// Transactions remembered (pending or recently answered).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Hash of a transaction key; the name is hashed in lower case (names match without regard
    /// to case, RFC 4343).
    fn hash(&self, key: &FlowKey, id: u16, name: &NameBuf) -> u64 {
        let mut h = self.hasher.build_hasher();
        let (a, b, c) = key.packed();
        h.write_u128(a);
        h.write_u128(b);
        h.write_u64(c);
        h.write_u16(id);
        let mut lower = [0u8; 256];
        let w = name.wire();
        for (d, s) in lower.iter_mut().zip(w) {
            *d = s.to_ascii_lowercase();
        }
        h.write(&lower[..w.len()]);
        h.finish()
    }

    fn find(&self, key: &FlowKey, id: u16, name: &NameBuf) -> (u64, Option<u32>) {
        let hash = self.hash(key, id, name);
        let found = self
            .table
            .find(hash, |t| t.id == id && t.key == *key && t.qname == *name);
        (hash, found)
    }

    /// One DNS message from `key.src` to `key.dst` (`key.proto` tells UDP from TCP).
    pub fn on_message(&mut self, ts: Timestamp, key: &FlowKey, msg: &[u8]) {
        let Some(h) = Header::parse(msg) else {
            self.stats.malformed(Malformed::Truncated);
            return;
        };
        if key.proto == 6 {
            self.stats.tcp_messages += 1;
        }
        let mut q = Question::default();
        let rr_start = match questions(msg, &h, &mut q) {
            Ok(at) => at,
            Err(why) => {
                // Without its question a message cannot be paired: counted, no record.
                if h.is_response() {
                    self.stats.responses += 1;
                } else {
                    self.stats.queries += 1;
                }
                self.stats.malformed(why);
                return;
            }
        };
        if h.is_response() {
            self.on_response(ts, key, msg, h, rr_start, q);
        } else {
            self.on_query(ts, key, msg, h, rr_start, q);
        }
    }

    fn on_query(
        &mut self,
        ts: Timestamp,
        key: &FlowKey,
        msg: &[u8],
        h: Header,
        rr_start: usize,
        q: Question,
    ) {
        self.stats.queries += 1;
        let (hash, found) = self.find(key, h.id, &q.name);
        if found.is_some() {
            // A retransmission or duplicated frame: counted, not read again (malformed
            // counts are per distinct message).
            self.stats.duplicate_queries += 1;
            return;
        }
        let mut info = QueryInfo {
            opcode: h.opcode(),
            flags: h.flags,
            edns: None,
            len: msg.len() as u32,
            malformed: None,
        };
        let mut it = RrIter::new(msg, &h, rr_start);
        for rr in it.by_ref() {
            match rr {
                Ok(rr) if rr.rtype == TYPE_OPT && rr.section == Section::Additional => {
                    match read_opt(msg, &rr) {
                        Ok(e) => info.edns = Some(e),
                        Err(why) => info.malformed = info.malformed.or(Some(why)),
                    }
                }
                Ok(_) => {}
                Err(why) => info.malformed = info.malformed.or(Some(why)),
            }
        }
        if info.malformed.is_none() && it.offset() < msg.len() {
            info.malformed = Some(Malformed::TrailingData);
        }
        if let Some(why) = info.malformed {
            self.stats.malformed(why);
        }
        self.make_room();
        self.table.insert(Txn {
            key: *key,
            hash,
            id: h.id,
            qname: q.name,
            qtype: q.qtype,
            qclass: q.qclass,
            ts,
            answered: None,
            query: Some(info),
        });
    }

    fn on_response(
        &mut self,
        ts: Timestamp,
        key: &FlowKey,
        msg: &[u8],
        h: Header,
        rr_start: usize,
        q: Question,
    ) {
        self.stats.responses += 1;
        let client_key = key.reversed();
        let (hash, found) = self.find(&client_key, h.id, &q.name);
        let duplicate = found.is_some_and(|i| self.table.get(i).answered.is_some());
        if h.flag(FLAG_TC) && !duplicate {
            self.stats.truncated_responses += 1;
        }
        let resp = Response {
            msg,
            h,
            rr_start,
            ts,
        };
        match found {
            Some(_) if duplicate => {
                // Not read again: malformed counts are per distinct message.
                self.stats.duplicate_responses += 1;
            }
            Some(i) => {
                let mut r = self.base_record(self.table.get(i), Status::Answered);
                self.fill_response(&mut r, &resp);
                let lat = (ts.as_nanos() - self.table.get(i).ts.as_nanos()).max(0) as u64 / 1000;
                r.latency_us = Some(lat);
                self.stats.latency.record(lat);
                self.stats.answered += 1;
                self.table.answer(i, ts);
                self.push(r);
            }
            None => {
                self.stats.orphan_responses += 1;
                let txn = Txn {
                    key: client_key,
                    hash,
                    id: h.id,
                    qname: q.name,
                    qtype: q.qtype,
                    qclass: q.qclass,
                    ts,
                    answered: Some(ts),
                    query: None,
                };
                let mut r = self.base_record(&txn, Status::OrphanResponse);
                self.fill_response(&mut r, &resp);
                self.make_room();
                self.table.insert(txn);
                self.push(r);
            }
        }
    }

    /// Makes room when the table is full: the oldest answered entry goes first (it only
    /// recognises duplicates), else the oldest pending query, emitted as unanswered.
    fn make_room(&mut self) {
        if self.table.len() < self.cfg.max_transactions {
            return;
        }
        let victim = self
            .table
            .oldest(Which::Answered)
            .or_else(|| self.table.oldest(Which::Pending));
        if let Some(i) = victim {
            self.stats.evicted += 1;
            self.drop_entry(i);
        }
    }

    /// Forgets entry `i`, emitting it first as unanswered if it was pending. The entry is read
    /// in place, not copied out.
    fn drop_entry(&mut self, i: u32) {
        let t = self.table.get(i);
        if t.answered.is_none() {
            self.stats.unanswered += 1;
            let r = self.base_record(t, Status::Unanswered);
            self.push(r);
        }
        self.table.remove(i);
    }

    fn push(&mut self, r: DnsRecord) {
        let s = &mut self.stats;
        s.records += 1;
        s.qnames.add(&r.qname, 1);
        *s.qtypes.entry(r.qtype).or_default() += 1;
        if let Some(rc) = r.rcode {
            *s.rcodes.entry(rc).or_default() += 1;
        }
        self.out.push(r);
    }

    /// Emits queries older than the timeout as unanswered and forgets answered transactions
    /// older than the duplicate window.
    pub fn expire(&mut self, now: Timestamp) {
        let limit = now.as_nanos().saturating_sub(self.cfg.query_timeout_ns);
        while let Some(i) = self.table.oldest(Which::Pending) {
            if self.table.get(i).ts.as_nanos() >= limit {
                break;
            }
            self.drop_entry(i);
        }
        let limit = now.as_nanos().saturating_sub(self.cfg.duplicate_window_ns);
        while let Some(i) = self.table.oldest(Which::Answered) {
            if self.table.get(i).answered.map_or(0, |t| t.as_nanos()) >= limit {
                break;
            }
            self.table.remove(i);
        }
    }

    /// End of input: every pending query is emitted as unanswered.
    pub fn finish(&mut self) {
        while let Some(i) = self
            .table
            .oldest(Which::Pending)
            .or_else(|| self.table.oldest(Which::Answered))
        {
            self.drop_entry(i);
        }
    }

    fn names(&self) -> &dyn NameWriter {
        match &self.cfg.name_key {
            Some(k) => k,
            None => &PlainNames,
        }
    }

    /// The text of the (already validated) owner name at `pos`.
    fn owner_text(&self, m: &[u8], pos: usize) -> String {
        let mut n = NameBuf::default();
        let _ = crate::parse::name::read_name(m, pos, Some(&mut n));
        let mut owner = String::with_capacity(n.wire().len() + 1);
        if n.is_root() {
            n.push_text(&mut owner);
        } else {
            self.names().write_name(&n, &mut owner);
        }
        owner
    }

    /// A record with the transaction's addressing and query fields, no response fields.
    fn base_record(&self, t: &Txn, status: Status) -> DnsRecord {
        let mut qname = String::with_capacity(t.qname.wire().len() + 1);
        if t.qname.is_root() {
            // The root is shown as tshark shows it even with a name key: it is no secret.
            t.qname.push_text(&mut qname);
        } else {
            self.names().write_name(&t.qname, &mut qname);
        }
        let k = &t.key;
        let q = t.query.unwrap_or_default();
        let edns = q.edns;
        DnsRecord {
            ts: t.ts,
            ip_version: if k.src.is_ipv4() { 4 } else { 6 },
            src_ip: k.src,
            src_port: k.src_port,
            dst_ip: k.dst,
            dst_port: k.dst_port,
            vlan: k.vlan,
            community_id: community_id_v1(k, 0),
            transport: if k.proto == 6 { "tcp" } else { "udp" },
            status,
            id: t.id,
            opcode: q.opcode,
            qname,
            qtype: t.qtype,
            qtype_name: type_name(t.qtype),
            qclass: t.qclass,
            rcode: None,
            rcode_name: None,
            aa: false,
            tc: false,
            rd: q.flags & FLAG_RD != 0,
            ra: false,
            ad: false,
            cd: q.flags & FLAG_CD != 0,
            answer_names: Vec::new(),
            answer_types: Vec::new(),
            answer_ttls: Vec::new(),
            answer_data: Vec::new(),
            authority_names: Vec::new(),
            authority_types: Vec::new(),
            authority_ttls: Vec::new(),
            authority_data: Vec::new(),
            additional_names: Vec::new(),
            additional_types: Vec::new(),
            additional_ttls: Vec::new(),
            additional_data: Vec::new(),
            answer_count: 0,
            authority_count: 0,
            additional_count: 0,
            edns_udp_size: edns.map(|e| e.udp_size),
            edns_version: edns.map(|e| e.version),
            edns_do: edns.is_some_and(|e| e.dnssec_ok),
            edns_client_subnet: edns.and_then(|e| e.client_subnet).map(|c| c.to_text()),
            latency_us: None,
            query_len: t.query.map(|q| q.len),
            response_len: None,
            malformed: q.malformed.map(Malformed::name),
        }
    }

    /// Adds the response's fields to `r`, counting a malformed response and a capped record.
    fn fill_response(&mut self, r: &mut DnsRecord, resp: &Response<'_>) {
        let (m, h) = (resp.msg, &resp.h);
        let orphan = r.status == Status::OrphanResponse;
        if orphan {
            r.ts = resp.ts;
            r.opcode = h.opcode();
            r.rd = h.flag(FLAG_RD);
            r.cd = h.flag(FLAG_CD);
        }
        r.aa = h.flag(FLAG_AA);
        r.tc = h.flag(FLAG_TC);
        r.ra = h.flag(FLAG_RA);
        r.ad = h.flag(FLAG_AD);
        r.answer_count = h.ancount;
        r.authority_count = h.nscount;
        r.additional_count = h.arcount;
        r.response_len = Some(m.len() as u32);
        let mut edns: Option<Edns> = None;
        let max = self.cfg.max_records;
        let mut secs = [h.ancount, h.nscount, h.arcount]
            .map(|n| SectionRecords::with_capacity((n as usize).min(max)));
        let mut capped = false;
        let mut bad = None;
        let mut qtext: Option<String> = None;
        let mut it = RrIter::new(m, h, resp.rr_start);
        for rr in it.by_ref() {
            let rr = match rr {
                Ok(rr) => rr,
                Err(why) => {
                    bad = Some(why);
                    break;
                }
            };
            if rr.rtype == TYPE_OPT && rr.section == Section::Additional {
                match read_opt(m, &rr) {
                    Ok(e) => edns = Some(e),
                    Err(why) => bad = bad.or(Some(why)),
                }
                continue;
            }
            let si = rr.section as usize;
            if secs[si].len() >= self.cfg.max_records {
                capped = true;
                continue;
            }
            // Most owners are a pointer to the question name (offset 12): rendered once.
            let owner = if m.get(rr.name_pos..rr.name_pos + 2) == Some(&[0xc0, 12]) {
                if qtext.is_none() {
                    qtext = Some(self.owner_text(m, 12));
                }
                qtext.clone().unwrap_or_default()
            } else {
                self.owner_text(m, rr.name_pos)
            };
            let mut data = String::new();
            if let Err(why) = render(m, &rr, self.names(), &mut data) {
                bad = bad.or(Some(why));
                data.clear();
                let d = &m[rr.rdata.clone()];
                use std::fmt::Write as _;
                let _ = write!(data, "\\# {}", d.len());
            }
            let s = &mut secs[si];
            s.names.push(owner);
            s.types.push(rr.rtype);
            s.ttls.push(rr.ttl);
            s.data.push(data);
        }
        if bad.is_none() && it.offset() < m.len() {
            bad = Some(Malformed::TrailingData);
        }
        if capped {
            self.stats.records_capped += 1;
        }
        for (i, s) in secs.into_iter().enumerate() {
            r.set_section(i, s);
        }
        let rcode = h.rcode() as u16 | edns.map_or(0, |e| (e.ext_rcode as u16) << 4);
        r.rcode = Some(rcode);
        r.rcode_name = Some(rcode_name(rcode));
        if orphan || r.edns_udp_size.is_none() {
            if let Some(e) = edns {
                r.edns_udp_size = Some(e.udp_size);
                r.edns_version = Some(e.version);
                r.edns_do = e.dnssec_ok;
            }
        }
        if r.edns_client_subnet.is_none() {
            r.edns_client_subnet = edns.and_then(|e| e.client_subnet).map(|c| c.to_text());
        }
        if let Some(why) = bad {
            r.malformed = Some(why.name());
            self.stats.malformed(why);
        }
    }
}
