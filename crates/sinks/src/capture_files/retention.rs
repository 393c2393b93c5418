//! Retention of a rotating capture: the finished files a writer made are deleted, oldest first,
//! once they take more than a byte budget or are older than a time budget. The probe's forensic
//! ring buffer keeps "the last N minutes / N GB" of raw packets this way.

use super::CaptureFileError;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A finished file this writer made.
#[derive(Debug)]
struct Finished {
    path: PathBuf,
    bytes: u64,
    /// When its last packet was written (it was closed then).
    closed: Instant,
}

/// The finished files of one writer, oldest first, and the budgets they are held to.
#[derive(Debug, Default)]
pub(super) struct Retention {
    max_bytes: Option<u64>,
    max_age: Option<Duration>,
    finished: VecDeque<Finished>,
    finished_bytes: u64,
    /// Files deleted so far.
    pub removed_files: u64,
    /// Bytes deleted so far.
    pub removed_bytes: u64,
}

impl Retention {
    /// Budgets: at most `max_bytes` on disk (the file being written included), no finished file
    /// older than `max_age`. Neither: nothing is ever deleted.
    pub fn new(max_bytes: Option<u64>, max_age: Option<Duration>) -> Retention {
        Retention {
            max_bytes,
            max_age,
            ..Retention::default()
        }
    }

    /// True when a budget is set (otherwise nothing needs tracking).
    pub fn active(&self) -> bool {
        self.max_bytes.is_some() || self.max_age.is_some()
    }

    /// A file is (re)created at `path`: a finished file of that name (a `-W` ring coming round)
    /// was truncated and no longer counts.
    pub fn reopened(&mut self, path: &Path) {
        if let Some(i) = self.finished.iter().position(|f| f.path == path) {
            let f = self.finished.remove(i).expect("index from position");
            self.finished_bytes -= f.bytes;
        }
    }

    /// A file was finished (closed after its last packet) at `closed`.
    pub fn finished(&mut self, path: PathBuf, bytes: u64, closed: Instant) {
        if !self.active() {
            return;
        }
        self.finished_bytes += bytes;
        self.finished.push_back(Finished {
            path,
            bytes,
            closed,
        });
    }

    /// Deletes finished files, oldest first, while they and the file being written
    /// (`current_bytes`) take more than the byte budget, and every finished file closed longer
    /// than the time budget before `now`. The file being written is never deleted. A file
    /// already gone (removed by hand) is forgotten; any other failure is returned and the file
    /// stays listed.
    pub fn enforce(&mut self, current_bytes: u64, now: Instant) -> Result<(), CaptureFileError> {
        while let Some(oldest) = self.finished.front() {
            let over_bytes = self
                .max_bytes
                .is_some_and(|max| self.finished_bytes + current_bytes > max);
            let too_old = self
                .max_age
                .is_some_and(|age| now.saturating_duration_since(oldest.closed) > age);
            if !over_bytes && !too_old {
                break;
            }
            match std::fs::remove_file(&oldest.path) {
                Ok(()) => {
                    self.removed_files += 1;
                    self.removed_bytes += oldest.bytes;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(CaptureFileError::Remove {
                        path: oldest.path.clone(),
                        source: e,
                    })
                }
            }
            let f = self.finished.pop_front().expect("front exists");
            self.finished_bytes -= f.bytes;
        }
        Ok(())
    }

    /// Bytes in the finished files kept (tracked only while a budget is set).
    #[cfg(test)]
    pub fn finished_bytes(&self) -> u64 {
        self.finished_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, bytes: usize) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, vec![0u8; bytes]).unwrap();
        p
    }

    #[test]
    fn the_oldest_files_go_first_until_the_byte_budget_holds() {
        let d = tempfile::tempdir().unwrap();
        let t0 = Instant::now();
        let mut r = Retention::new(Some(250), None);
        for (i, name) in ["a", "b", "c"].iter().enumerate() {
            let p = file(d.path(), name, 100);
            r.finished(p, 100, t0 + Duration::from_secs(i as u64));
        }
        // 300 finished + 10 being written > 250: a goes (b + c + current = 210).
        r.enforce(10, t0).unwrap();
        assert!(!d.path().join("a").exists());
        assert!(d.path().join("b").exists() && d.path().join("c").exists());
        assert_eq!((r.removed_files, r.removed_bytes), (1, 100));
        assert_eq!(r.finished_bytes(), 200);
        // 200 + 60 > 250: b goes too.
        r.enforce(60, t0).unwrap();
        assert!(!d.path().join("b").exists() && d.path().join("c").exists());
        // The file being written alone over the budget: every finished file goes, never it.
        r.enforce(1000, t0).unwrap();
        assert!(!d.path().join("c").exists());
        assert_eq!((r.removed_files, r.removed_bytes), (3, 300));
        assert_eq!(r.finished_bytes(), 0);
        r.enforce(1000, t0).unwrap();
    }

    #[test]
    fn files_older_than_the_time_budget_go() {
        let d = tempfile::tempdir().unwrap();
        let t0 = Instant::now();
        let mut r = Retention::new(None, Some(Duration::from_secs(60)));
        let a = file(d.path(), "a", 10);
        let b = file(d.path(), "b", 10);
        r.finished(a.clone(), 10, t0);
        r.finished(b.clone(), 10, t0 + Duration::from_secs(30));
        r.enforce(0, t0 + Duration::from_secs(60)).unwrap();
        assert!(a.exists() && b.exists(), "exactly 60 s old is kept");
        r.enforce(0, t0 + Duration::from_secs(61)).unwrap();
        assert!(!a.exists() && b.exists());
        r.enforce(0, t0 + Duration::from_secs(91)).unwrap();
        assert!(!b.exists());
        assert_eq!(r.removed_files, 2);
    }

    #[test]
    fn a_reused_name_counts_once_and_a_vanished_file_is_forgotten() {
        let d = tempfile::tempdir().unwrap();
        let t0 = Instant::now();
        let mut r = Retention::new(Some(150), None);
        let a = file(d.path(), "a", 100);
        r.finished(a.clone(), 100, t0);
        // A ring of names comes round to `a`: the old one was truncated by the new one.
        r.reopened(&a);
        assert_eq!(r.finished_bytes(), 0);
        r.enforce(100, t0).unwrap();
        assert!(a.exists(), "the file being written is never deleted");
        let b = file(d.path(), "b", 100);
        r.finished(b.clone(), 100, t0);
        std::fs::remove_file(&b).unwrap();
        r.enforce(100, t0).unwrap();
        assert_eq!(r.finished_bytes(), 0);
        assert_eq!(r.removed_files, 0);
    }

    #[test]
    fn without_budgets_nothing_is_tracked_or_deleted() {
        let d = tempfile::tempdir().unwrap();
        let mut r = Retention::new(None, None);
        let a = file(d.path(), "a", 100);
        r.finished(a.clone(), 100, Instant::now());
        r.enforce(u64::MAX / 2, Instant::now() + Duration::from_secs(1 << 30))
            .unwrap();
        assert!(a.exists());
        assert_eq!(r.finished_bytes(), 0);
    }
}
