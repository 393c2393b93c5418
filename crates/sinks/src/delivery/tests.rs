use super::*;
use crate::stream::{Stream, StreamKind};

/// A destination that can be taken down, refuse, or lose its answers, and records what it got.
#[derive(Default)]
struct Remote {
    up: bool,
    /// Deliveries that succeed but report a lost answer.
    lose_answers: u32,
    /// Sequence numbers refused for good.
    refuse: Vec<u64>,
    got: Vec<(String, u64, Vec<u8>)>,
    attempts: u64,
    /// Most batches taken at once (0 or 1: one at a time), and the sizes of groups taken.
    group: usize,
    groups: Vec<usize>,
}

#[derive(Clone)]
struct Mock(Arc<Mutex<Remote>>);

impl Mock {
    fn new(up: bool) -> Mock {
        Mock(Arc::new(Mutex::new(Remote {
            up,
            ..Default::default()
        })))
    }
    fn set_up(&self, up: bool) {
        self.0.lock().unwrap().up = up;
    }
    fn seqs(&self) -> Vec<u64> {
        self.0.lock().unwrap().got.iter().map(|g| g.1).collect()
    }
}

impl Sink for Mock {
    fn name(&self) -> String {
        "mock://".into()
    }
    fn routes(&self) -> Routes {
        Routes::kinds(&[StreamKind::Http])
    }
    fn deliver(&mut self, b: &Batch) -> Result<(), DeliverError> {
        let mut r = self.0.lock().unwrap();
        r.attempts += 1;
        if !r.up {
            return Err(DeliverError::retry("mock://", "connection refused"));
        }
        if r.refuse.contains(&b.seq) {
            return Err(DeliverError::fatal("mock://", "bad rows"));
        }
        r.got.push((b.stream.name(), b.seq, b.json().to_vec()));
        if r.lose_answers > 0 {
            r.lose_answers -= 1;
            return Err(DeliverError::retry("mock://", "connection reset").ambiguous());
        }
        Ok(())
    }
    fn already_delivered(&mut self, b: &Batch) -> Result<bool, DeliverError> {
        let r = self.0.lock().unwrap();
        if !r.up {
            // Asking needs the destination too.
            return Err(DeliverError::retry("mock://", "connection refused"));
        }
        Ok(r.got.iter().any(|g| g.1 == b.seq))
    }
    fn group_limit(&self, _stream: &Stream) -> usize {
        self.0.lock().unwrap().group.max(1)
    }
    fn deliver_group(&mut self, group: &[Arc<Batch>]) -> Result<(), DeliverError> {
        // All or nothing, as one insert.
        let mut r = self.0.lock().unwrap();
        r.attempts += 1;
        if !r.up {
            return Err(DeliverError::retry("mock://", "connection refused"));
        }
        if group.iter().any(|b| r.refuse.contains(&b.seq)) {
            return Err(DeliverError::fatal("mock://", "bad rows"));
        }
        r.groups.push(group.len());
        for b in group {
            r.got.push((b.stream.name(), b.seq, b.json().to_vec()));
        }
        if r.lose_answers > 0 {
            r.lose_answers -= 1;
            return Err(DeliverError::retry("mock://", "connection reset").ambiguous());
        }
        Ok(())
    }
}

fn batch(seq: u64) -> Arc<Batch> {
    Arc::new(Batch::encoded(
        Stream::of(StreamKind::Http),
        seq,
        2,
        format!("{{\"n\":{seq}}}\n{{\"n\":{seq}}}\n").into_bytes(),
    ))
}

fn quick(spool: Option<(PathBuf, u64)>, when_full: WhenFull) -> DeliveryConfig {
    DeliveryConfig {
        memory_batches: 4,
        spool,
        when_full,
        retry_min: Duration::from_millis(2),
        retry_max: Duration::from_millis(20),
        idle_flush: Duration::from_millis(20),
        drain_timeout: Duration::from_millis(300),
        ..DeliveryConfig::default()
    }
}

fn wait_for(cond: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "condition not reached"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn an_outage_spools_and_every_batch_arrives_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let m = Mock::new(true);
    let r = SinkRunner::start(
        Box::new(m.clone()),
        &Routes::all(),
        quick(
            Some((dir.path().to_path_buf(), 1 << 30)),
            WhenFull::DropNewest,
        ),
    )
    .unwrap();
    for i in 0..10 {
        r.push(&batch(i));
    }
    wait_for(|| m.seqs().len() == 10);
    m.set_up(false);
    for i in 10..200 {
        r.push(&batch(i));
    }
    // Memory holds 4; the rest is on disk, and nothing was dropped.
    assert!(r.stats().spooled.load(Ordering::Relaxed) >= 2 * 180);
    assert_eq!(r.stats().dropped_full.load(Ordering::Relaxed), 0);
    wait_for(|| r.stats().errors.load(Ordering::Relaxed) > 0);
    assert!(!r.stats().healthy.load(Ordering::Relaxed));
    m.set_up(true);
    for i in 200..220 {
        r.push(&batch(i));
    }
    wait_for(|| m.seqs().len() == 220);
    let (rep, closed) = r.close(true);
    closed.unwrap();
    assert_eq!(m.seqs(), (0..220).collect::<Vec<_>>());
    assert_eq!(rep.delivered, 440);
    assert_eq!(
        (rep.backlog, rep.dropped_full, rep.dropped_refused),
        (0, 0, 0)
    );
    assert!(rep.errors > 0);
}

#[test]
fn what_is_left_at_close_is_delivered_first_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Some((dir.path().to_path_buf(), 1 << 30));
    let m = Mock::new(false);
    let r = SinkRunner::start(
        Box::new(m.clone()),
        &Routes::all(),
        quick(spool.clone(), WhenFull::DropNewest),
    )
    .unwrap();
    for i in 0..30 {
        r.push(&batch(i));
    }
    let (rep, _) = r.close(true);
    assert_eq!(rep.backlog, 60, "every record kept for the next run");
    assert_eq!(rep.dropped_full, 0);
    assert!(m.seqs().is_empty());

    // The next run: the destination is back; old batches come before new ones.
    let m2 = Mock::new(true);
    let r = SinkRunner::start(
        Box::new(m2.clone()),
        &Routes::all(),
        quick(spool, WhenFull::DropNewest),
    )
    .unwrap();
    for i in 100..105 {
        r.push(&batch(i));
    }
    wait_for(|| m2.seqs().len() == 35);
    let (rep, _) = r.close(true);
    let want: Vec<u64> = (0..30).chain(100..105).collect();
    assert_eq!(m2.seqs(), want);
    assert_eq!(rep.backlog, 0);
}

#[test]
fn without_a_spool_a_full_queue_drops_the_newest_and_counts_it() {
    let m = Mock::new(false);
    let r = SinkRunner::start(
        Box::new(m.clone()),
        &Routes::all(),
        quick(None, WhenFull::DropNewest),
    )
    .unwrap();
    let t0 = Instant::now();
    for i in 0..50 {
        r.push(&batch(i));
    }
    // Never waited on the failing destination.
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(r.stats().dropped_full.load(Ordering::Relaxed), 2 * (50 - 4));
    m.set_up(true);
    wait_for(|| m.seqs().len() == 4);
    let (rep, _) = r.close(true);
    assert_eq!(m.seqs(), vec![0, 1, 2, 3]);
    assert_eq!(rep.delivered + rep.dropped_full, 100);
}

#[test]
fn block_policy_waits_for_room_and_loses_nothing() {
    let m = Mock::new(false);
    let r = Arc::new(
        SinkRunner::start(
            Box::new(m.clone()),
            &Routes::all(),
            quick(None, WhenFull::Block),
        )
        .unwrap(),
    );
    let pushed = Arc::new(AtomicU64::new(0));
    let (r2, p2) = (Arc::clone(&r), Arc::clone(&pushed));
    let producer = std::thread::spawn(move || {
        for i in 0..20 {
            r2.push(&batch(i));
            p2.fetch_add(1, Ordering::Relaxed);
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    let stuck = pushed.load(Ordering::Relaxed);
    assert!(
        stuck <= 5,
        "the producer waits while the sink is down ({stuck})"
    );
    m.set_up(true);
    producer.join().unwrap();
    wait_for(|| m.seqs().len() == 20);
    let r = Arc::try_unwrap(r).ok().expect("sole owner");
    let (rep, _) = r.close(true);
    assert_eq!(m.seqs(), (0..20).collect::<Vec<_>>());
    assert_eq!(rep.dropped_full, 0);
}

#[test]
fn lost_answers_and_refusals_never_count_twice_or_stall() {
    let m = Mock::new(true);
    {
        let mut g = m.0.lock().unwrap();
        g.lose_answers = 3;
        g.refuse = vec![5];
    }
    let r = SinkRunner::start(
        Box::new(m.clone()),
        &Routes::all(),
        quick(None, WhenFull::Block),
    )
    .unwrap();
    for i in 0..10 {
        r.push(&batch(i));
    }
    let (rep, _) = r.close(true);
    let want: Vec<u64> = (0..10).filter(|&i| i != 5).collect();
    assert_eq!(m.seqs(), want, "each batch once, the refused one never");
    assert_eq!(rep.delivered, 18);
    assert_eq!(rep.dropped_refused, 2);
}

/// The answer to an insert is lost and the destination goes down before the sink can ask
/// whether it arrived: it asks again once the destination is back, and does not insert twice.
#[test]
fn a_lost_answer_is_checked_when_the_destination_is_back() {
    let m = Mock::new(true);
    m.0.lock().unwrap().lose_answers = 1;
    let r = SinkRunner::start(
        Box::new(m.clone()),
        &Routes::all(),
        quick(None, WhenFull::Block),
    )
    .unwrap();
    // Down right after the (lost) answer: the first check fails too.
    let m2 = m.clone();
    let watcher = std::thread::spawn(move || {
        wait_for(|| m2.0.lock().unwrap().attempts >= 1);
        m2.set_up(false);
        std::thread::sleep(Duration::from_millis(100));
        m2.set_up(true);
    });
    r.push(&batch(0));
    watcher.join().unwrap();
    r.push(&batch(1));
    let (rep, _) = r.close(true);
    assert_eq!(m.seqs(), vec![0, 1]);
    assert_eq!(rep.delivered, 4);
}

#[test]
fn routes_select_streams_and_views() {
    let r = Routes::kinds(&[StreamKind::Flows, StreamKind::View]).with_views(vec!["src_ip".into()]);
    assert!(r.accepts(&Stream::of(StreamKind::Flows)));
    assert!(r.accepts(&Stream::view("src_ip")));
    assert!(!r.accepts(&Stream::view("dst_ip")));
    assert!(!r.accepts(&Stream::of(StreamKind::Http)));
    let both = r.intersect(&Routes::kinds(&[StreamKind::Flows]));
    assert!(both.accepts(&Stream::of(StreamKind::Flows)));
    assert!(!both.accepts(&Stream::view("src_ip")));
    let m = Mock::new(true);
    let runner =
        SinkRunner::start(Box::new(m), &Routes::all(), quick(None, WhenFull::Block)).unwrap();
    assert!(runner.accepts(&Stream::of(StreamKind::Http)));
    assert!(
        !runner.accepts(&Stream::of(StreamKind::Flows)),
        "the sink only takes HTTP"
    );
}

/// A sink taking every stream kind (the runner's counters must have a slot for each).
struct Everything(Arc<Mutex<u64>>);

impl Sink for Everything {
    fn name(&self) -> String {
        "all://".into()
    }
    fn routes(&self) -> Routes {
        Routes::all()
    }
    fn deliver(&mut self, b: &Batch) -> Result<(), DeliverError> {
        *self.0.lock().unwrap() += b.records();
        Ok(())
    }
}

#[test]
fn every_stream_kind_is_delivered_and_counted_under_its_name() {
    let got = Arc::new(Mutex::new(0u64));
    let r = SinkRunner::start(
        Box::new(Everything(Arc::clone(&got))),
        &Routes::all(),
        quick(None, WhenFull::Block),
    )
    .unwrap();
    for (i, k) in StreamKind::ALL.into_iter().enumerate() {
        let stream = if k == StreamKind::View {
            Stream::view("v")
        } else {
            Stream::of(k)
        };
        let n = i as u64 + 1;
        r.push(&Arc::new(Batch::encoded(
            stream,
            0,
            n,
            "{}\n".repeat(n as usize).into_bytes(),
        )));
    }
    let (rep, closed) = r.close(true);
    closed.unwrap();
    for (i, k) in StreamKind::ALL.into_iter().enumerate() {
        assert_eq!(
            rep.delivered_by_stream.get(k.name()).copied(),
            Some(i as u64 + 1),
            "{}",
            k.name()
        );
    }
    assert_eq!(
        *got.lock().unwrap(),
        (1..=StreamKind::ALL.len() as u64).sum::<u64>()
    );
}

/// A sink that takes groups, down while `n` batches pile up, then up: returns what it got.
fn backlog_in_groups(n: u64, group: usize, lose_answers: u32) -> (Mock, DeliveryReport) {
    let m = Mock::new(false);
    {
        let mut r = m.0.lock().unwrap();
        r.group = group;
        r.lose_answers = lose_answers;
    }
    let cfg = DeliveryConfig {
        memory_batches: 1024,
        ..quick(None, WhenFull::DropNewest)
    };
    let r = SinkRunner::start(Box::new(m.clone()), &Routes::all(), cfg).unwrap();
    for i in 0..n {
        r.push(&batch(i));
    }
    wait_for(|| r.stats().errors.load(Ordering::Relaxed) > 0);
    m.set_up(true);
    wait_for(|| r.stats().delivered.load(Ordering::Relaxed) == 2 * n);
    let (rep, _) = r.close(true);
    (m, rep)
}

#[test]
fn a_backlog_goes_out_in_groups_in_order_each_batch_once() {
    let (m, rep) = backlog_in_groups(20, 8, 0);
    assert_eq!(m.seqs(), (0..20).collect::<Vec<_>>());
    let groups = m.0.lock().unwrap().groups.clone();
    assert!(groups.iter().all(|&g| (2..=8).contains(&g)), "{groups:?}");
    assert!(
        groups.len() <= 3,
        "20 batches in groups of up to 8: {groups:?}"
    );
    assert_eq!((rep.delivered, rep.dropped_refused), (40, 0));
    // A sink without groups still gets one batch at a time.
    let (m, _) = backlog_in_groups(5, 1, 0);
    assert!(m.0.lock().unwrap().groups.is_empty());
    assert_eq!(m.seqs(), (0..5).collect::<Vec<_>>());
}

#[test]
fn a_group_whose_answer_was_lost_is_not_delivered_twice() {
    let (m, rep) = backlog_in_groups(6, 8, 1);
    assert_eq!(m.seqs(), (0..6).collect::<Vec<_>>(), "each batch once");
    assert_eq!(rep.delivered, 12);
}
