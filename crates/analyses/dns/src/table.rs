//! The bounded table of remembered transactions: a slab of fixed-size entries (the query name
//! is kept in wire form in the entry, so a query allocates nothing once the slab has grown), a
//! hash index, and two lists: pending queries in query order (the oldest is the first to time
//! out) and answered transactions in answer order (kept a short while to recognise duplicates),
//! so that the oldest of each is found in O(1).

use crate::parse::name::NameBuf;
use crate::parse::Edns;
use crate::summary::Malformed;
use hashbrown::HashTable;
use netspectra_packet::{FlowKey, Timestamp};

/// What the query said, kept until its response arrives.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct QueryInfo {
    /// Opcode.
    pub opcode: u8,
    /// The query's flags word.
    pub flags: u16,
    /// Its OPT record.
    pub edns: Option<Edns>,
    /// Message length.
    pub len: u32,
    /// Why the query was malformed, if it was.
    pub malformed: Option<Malformed>,
}

/// One remembered transaction.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Txn {
    /// Client to server (query direction), protocol included.
    pub key: FlowKey,
    /// Hash of (key, id, lower-case name).
    pub hash: u64,
    /// Transaction id.
    pub id: u16,
    /// Query name.
    pub qname: NameBuf,
    /// Query type.
    pub qtype: u16,
    /// Query class.
    pub qclass: u16,
    /// Time of the query (of the response for an orphan response).
    pub ts: Timestamp,
    /// Time its record was emitted (the response); the entry then stays to recognise
    /// duplicates for a while.
    pub answered: Option<Timestamp>,
    /// The query, when it was seen.
    pub query: Option<QueryInfo>,
}

const NIL: u32 = u32::MAX;

struct Slot {
    txn: Option<Txn>,
    prev: u32,
    next: u32,
}

/// A list through the slab, newest at `head`.
#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

const EMPTY: List = List {
    head: NIL,
    tail: NIL,
};

/// Which list an entry is in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Which {
    /// Queries waiting for their response, in query order.
    Pending,
    /// Answered transactions, in answer order.
    Answered,
}

/// Transactions by (client, server, protocol, id, name).
pub(crate) struct Table {
    index: HashTable<u32>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    lists: [List; 2],
    live: usize,
}

impl Table {
    pub fn new() -> Self {
        Table {
            index: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
            lists: [EMPTY, EMPTY],
            live: 0,
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.live
    }

    /// The entry matching `hash` for which `eq` holds.
    pub fn find(&self, hash: u64, eq: impl Fn(&Txn) -> bool) -> Option<u32> {
        let slots = &self.slots;
        self.index
            .find(hash, |&i| slots[i as usize].txn.as_ref().is_some_and(&eq))
            .copied()
    }

    pub fn get(&self, i: u32) -> &Txn {
        self.slots[i as usize].txn.as_ref().expect("live slot")
    }

    fn which(&self, i: u32) -> Which {
        if self.get(i).answered.is_some() {
            Which::Answered
        } else {
            Which::Pending
        }
    }

    /// The oldest entry of a list.
    pub fn oldest(&self, w: Which) -> Option<u32> {
        let t = self.lists[w as usize].tail;
        (t != NIL).then_some(t)
    }

    /// Adds an entry as the newest of its list (answered when `t.answered` is set); the caller
    /// keeps the table within its bound.
    pub fn insert(&mut self, t: Txn) -> u32 {
        let hash = t.hash;
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize].txn = Some(t);
                i
            }
            None => {
                self.slots.push(Slot {
                    txn: Some(t),
                    prev: NIL,
                    next: NIL,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slots = &self.slots;
        self.index.insert_unique(hash, i, |&j| {
            slots[j as usize].txn.as_ref().map_or(0, |t| t.hash)
        });
        self.link_front(i, self.which(i));
        self.live += 1;
        i
    }

    /// Marks a pending entry answered at `at`: it moves to the answered list.
    pub fn answer(&mut self, i: u32, at: Timestamp) {
        self.unlink(i, Which::Pending);
        self.slots[i as usize]
            .txn
            .as_mut()
            .expect("live slot")
            .answered = Some(at);
        self.link_front(i, Which::Answered);
    }

    /// Removes an entry (read it first with [`Table::get`]: it is not copied out).
    pub fn remove(&mut self, i: u32) {
        let w = self.which(i);
        self.unlink(i, w);
        let hash = self.get(i).hash;
        self.slots[i as usize].txn = None;
        if let Ok(e) = self.index.find_entry(hash, |&j| j == i) {
            e.remove();
        }
        self.free.push(i);
        self.live -= 1;
    }

    fn unlink(&mut self, i: u32, w: Which) {
        let (p, n) = (self.slots[i as usize].prev, self.slots[i as usize].next);
        let l = &mut self.lists[w as usize];
        if p != NIL {
            self.slots[p as usize].next = n;
        } else {
            l.head = n;
        }
        if n != NIL {
            self.slots[n as usize].prev = p;
        } else {
            l.tail = p;
        }
    }

    fn link_front(&mut self, i: u32, w: Which) {
        let h = self.lists[w as usize].head;
        self.slots[i as usize].prev = NIL;
        self.slots[i as usize].next = h;
        if h != NIL {
            self.slots[h as usize].prev = i;
        } else {
            self.lists[w as usize].tail = i;
        }
        self.lists[w as usize].head = i;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(id: u16) -> Txn {
        Txn {
            key: FlowKey {
                src: "10.0.0.1".parse().unwrap(),
                dst: "10.0.0.2".parse().unwrap(),
                src_port: 1000,
                dst_port: 53,
                proto: 17,
                vlan: None,
            },
            hash: id as u64 % 3,
            id,
            qname: NameBuf::default(),
            qtype: 1,
            qclass: 1,
            ts: Timestamp(id as i64),
            answered: None,
            query: None,
        }
    }

    /// The entry size docs/DNS.md states (what bounds the table's memory).
    #[test]
    fn entry_size() {
        assert!(
            std::mem::size_of::<Option<Txn>>() <= 376,
            "{}",
            std::mem::size_of::<Option<Txn>>()
        );
    }

    #[test]
    fn oldest_first_per_list_and_slots_reused() {
        let mut t = Table::new();
        let a = t.insert(txn(1));
        let b = t.insert(txn(2));
        let c = t.insert(txn(3));
        assert_eq!(t.oldest(Which::Pending), Some(a));
        assert_eq!(t.oldest(Which::Answered), None);
        assert_eq!(t.find(2, |x| x.id == 2), Some(b));
        t.answer(a, Timestamp(10));
        assert_eq!(t.oldest(Which::Pending), Some(b));
        assert_eq!(t.oldest(Which::Answered), Some(a));
        t.remove(b);
        assert_eq!(t.find(2, |x| x.id == 2), None);
        t.remove(a);
        assert_eq!(t.oldest(Which::Answered), None);
        assert_eq!(t.oldest(Which::Pending), Some(c));
        let d = t.insert(txn(4));
        assert!(d == a || d == b, "a freed slot is reused");
        assert_eq!(t.len(), 2);
        t.remove(c);
        assert_eq!(t.oldest(Which::Pending), Some(d));
    }
}
