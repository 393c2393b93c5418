//! The rules every command follows when it writes files, so that no run can destroy the user's
//! data: an output is never one of the inputs (compared by device and inode, so symlinks, hard
//! links and `./` spellings are caught), outputs are distinct from each other, and a complete
//! output file appears under its name only when it is complete ([`AtomicFile`]).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Why an output path was refused.
#[derive(Debug, thiserror::Error)]
pub enum OutputClash {
    /// The output is (or resolves to) one of the inputs.
    #[error(
        "refusing to write {output}: it is the input {input} (same file); choose another output"
    )]
    IsInput {
        /// The output as given.
        output: PathBuf,
        /// The input it would overwrite.
        input: PathBuf,
    },
    /// An output directory lies inside (or is) an input directory, or an input lies inside it.
    #[error("refusing to write into {output}: it overlaps the input directory {input}; choose an output directory outside it")]
    InsideInput {
        /// The output directory as given.
        output: PathBuf,
        /// The input directory.
        input: PathBuf,
    },
    /// Two outputs of one run name the same file.
    #[error("{first} and {second} name the same output file; give them different names")]
    Twice {
        /// The first output.
        first: PathBuf,
        /// The second output, the same file.
        second: PathBuf,
    },
    /// The output names an existing directory where a file is expected (or the other way).
    #[error("{path}: {why}")]
    Kind {
        /// The output.
        path: PathBuf,
        /// What is wrong with it.
        why: &'static str,
    },
}

/// Device and inode of an existing file: the identity that symlinks and hard links share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    /// The identity of what `p` resolves to (symlinks followed), if it exists.
    fn of(p: &Path) -> Option<FileId> {
        std::fs::metadata(p).ok().map(|m| FileId {
            dev: m.dev(),
            ino: m.ino(),
        })
    }
}

/// The inputs of a run, and every output it will write, checked before anything is opened for
/// writing.
#[derive(Debug, Default)]
pub struct OutputPlan {
    inputs: Vec<(PathBuf, FileId)>,
    /// Input directories, canonical.
    input_dirs: Vec<(PathBuf, PathBuf)>,
    /// Outputs accepted so far: as given, identity when the file exists, and the absolute
    /// path it would be created at (for outputs that do not exist yet).
    outputs: Vec<(PathBuf, Option<FileId>, Option<PathBuf>)>,
}

/// The absolute, symlink-free path `p` would be created at: its parent canonicalized (when it
/// exists) plus its file name. Lets two spellings of a not-yet-existing output be compared.
fn would_be(p: &Path) -> Option<PathBuf> {
    let name = p.file_name()?;
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Some(std::fs::canonicalize(&parent).ok()?.join(name))
}

impl OutputPlan {
    /// An empty plan.
    pub fn new() -> Self {
        OutputPlan::default()
    }

    /// Registers an input file (`-`, standard input, and paths that do not exist are ignored:
    /// opening them reports its own error). A directory input registers the whole tree.
    pub fn input(&mut self, p: &Path) {
        if p.as_os_str() == "-" {
            return;
        }
        if p.is_dir() {
            if let Ok(c) = std::fs::canonicalize(p) {
                self.input_dirs.push((p.to_path_buf(), c));
            }
            return;
        }
        if let Some(id) = FileId::of(p) {
            self.inputs.push((p.to_path_buf(), id));
        }
    }

    /// Registers every file under an input directory (for link checks in directory mode).
    pub fn input_files<'a>(&mut self, files: impl IntoIterator<Item = &'a Path>) {
        for f in files {
            self.input(f);
        }
    }

    /// Accepts an output file, or says why it would destroy an input or another output. `-`
    /// (standard output) is always accepted.
    pub fn output(&mut self, p: &Path) -> Result<(), OutputClash> {
        if p.as_os_str() == "-" {
            return Ok(());
        }
        if p.is_dir() {
            return Err(OutputClash::Kind {
                path: p.to_path_buf(),
                why: "is a directory; give a file name",
            });
        }
        let id = FileId::of(p);
        let abs = would_be(p);
        if let Some(id) = id {
            if let Some((input, _)) = self.inputs.iter().find(|(_, i)| *i == id) {
                return Err(OutputClash::IsInput {
                    output: p.to_path_buf(),
                    input: input.clone(),
                });
            }
        }
        for (first, fid, fabs) in &self.outputs {
            let same = match (id, fid) {
                (Some(a), Some(b)) => a == *b,
                _ => abs.is_some() && abs == *fabs,
            };
            if same {
                return Err(OutputClash::Twice {
                    first: first.clone(),
                    second: p.to_path_buf(),
                });
            }
        }
        if let Some(abs) = &abs {
            // A file written inside an input tree would be read back as an input (by this run
            // in directory mode, or by the next one over that tree).
            if let Some((input, _)) = self.input_dirs.iter().find(|(_, d)| abs.starts_with(d)) {
                return Err(OutputClash::InsideInput {
                    output: p.to_path_buf(),
                    input: input.clone(),
                });
            }
        }
        self.outputs.push((p.to_path_buf(), id, abs));
        Ok(())
    }

    /// Accepts an output directory: it must not be an input directory, lie inside one, or
    /// contain one; and it must not be an existing regular file.
    pub fn output_dir(&mut self, d: &Path) -> Result<(), OutputClash> {
        if d.exists() && !d.is_dir() {
            return Err(OutputClash::Kind {
                path: d.to_path_buf(),
                why: "exists and is not a directory; give a directory name (-o DIR)",
            });
        }
        // Canonicalize the longest existing ancestor so that a not-yet-created directory is
        // placed correctly too.
        let abs = canonical_prefix(d);
        for (input, c) in &self.input_dirs {
            if abs.starts_with(c) || c.starts_with(&abs) {
                return Err(OutputClash::InsideInput {
                    output: d.to_path_buf(),
                    input: input.clone(),
                });
            }
        }
        // Input files inside the output directory are fine as long as no output file names
        // one of them, which `output()` checks file by file.
        Ok(())
    }
}

/// `p` made absolute with its longest existing ancestor canonicalized.
fn canonical_prefix(p: &Path) -> PathBuf {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    };
    let mut tail = Vec::new();
    let mut cur = abs.as_path();
    loop {
        if let Ok(c) = std::fs::canonicalize(cur) {
            let mut out = c;
            for t in tail.iter().rev() {
                out.push(t);
            }
            return out;
        }
        match (cur.parent(), cur.file_name()) {
            (Some(parent), Some(name)) => {
                tail.push(name.to_os_string());
                cur = parent;
            }
            _ => return abs,
        }
    }
}

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// A file written under a temporary name beside its destination and renamed into place by
/// [`AtomicFile::commit`]: readers (and scripts that test for the file) never see it half
/// written. Dropped without a commit, the temporary file is removed. A destination that exists
/// and is not a regular file (`/dev/null`, a FIFO, a terminal, `/dev/stdout`) is written
/// directly: renaming over it would replace the device or pipe with a plain file.
#[derive(Debug)]
pub struct AtomicFile {
    file: Option<File>,
    tmp: PathBuf,
    dest: PathBuf,
    /// Written in place (a device, FIFO or socket): nothing to rename or remove.
    direct: bool,
}

impl AtomicFile {
    /// Creates the temporary file for `dest` (making `dest`'s parent folders), or opens
    /// `dest` itself when it is an existing non-regular file.
    pub fn create(dest: &Path) -> io::Result<AtomicFile> {
        if std::fs::metadata(dest).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
            let file = OpenOptions::new().write(true).open(dest)?;
            return Ok(AtomicFile {
                file: Some(file),
                tmp: dest.to_path_buf(),
                dest: dest.to_path_buf(),
                direct: true,
            });
        }
        let parent = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent)?;
        let name = dest
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(
            ".tmp-{}-{}",
            std::process::id(),
            TMP_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let tmp = parent.join(tmp_name);
        let file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        Ok(AtomicFile {
            file: Some(file),
            tmp,
            dest: dest.to_path_buf(),
            direct: false,
        })
    }

    /// The name the file gets when committed.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// The temporary name it is written under.
    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// Flushes and renames the file into place, replacing what was there.
    pub fn commit(mut self) -> io::Result<PathBuf> {
        let dest = self.dest.clone();
        self.rename_to(&dest)?;
        Ok(dest)
    }

    /// Keeps what was written under `<dest>.partial` instead of the destination (an
    /// interrupted run: valid up to where it stopped, but not the complete result the name
    /// promises). Returns that path.
    pub fn keep_partial(mut self) -> io::Result<PathBuf> {
        if self.direct {
            let dest = self.dest.clone();
            self.rename_to(&dest)?;
            return Ok(dest);
        }
        let mut p = self.dest.clone().into_os_string();
        p.push(".partial");
        let p = PathBuf::from(p);
        self.rename_to(&p)?;
        Ok(p)
    }

    fn rename_to(&mut self, to: &Path) -> io::Result<()> {
        if let Some(mut f) = self.file.take() {
            f.flush()?;
            if !self.direct {
                std::fs::rename(&self.tmp, to)?;
            }
        }
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.file {
            Some(f) => f.write(buf),
            None => Err(io::Error::other("file already committed")),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match &mut self.file {
            Some(f) => f.write_vectored(bufs),
            None => Err(io::Error::other("file already committed")),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.file {
            Some(f) => f.write_all(buf),
            None => Err(io::Error::other("file already committed")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() && !self.direct {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::FileTypeExt;

    /// A FIFO stands for every non-regular destination (`/dev/null` itself is not risked).
    #[test]
    fn a_fifo_destination_is_written_in_place_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("out.fifo");
        let st = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(st.success());
        for partial in [false, true] {
            let f2 = fifo.clone();
            let reader = std::thread::spawn(move || {
                let mut s = String::new();
                File::open(&f2).unwrap().read_to_string(&mut s).unwrap();
                s
            });
            let mut w = AtomicFile::create(&fifo).unwrap();
            w.write_all(b"records\n").unwrap();
            let at = if partial {
                w.keep_partial().unwrap()
            } else {
                w.commit().unwrap()
            };
            assert_eq!(at, fifo);
            assert_eq!(reader.join().unwrap(), "records\n");
            let m = std::fs::symlink_metadata(&fifo).unwrap();
            assert!(m.file_type().is_fifo(), "the FIFO was replaced");
        }
        // Nothing was left beside it.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn an_input_is_caught_through_every_spelling() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.pcap");
        std::fs::write(&input, b"data").unwrap();
        let link = dir.path().join("link.pcap");
        std::os::unix::fs::symlink(&input, &link).unwrap();
        let hard = dir.path().join("hard.pcap");
        std::fs::hard_link(&input, &hard).unwrap();
        let dotted = dir.path().join(".").join("sub/../in.pcap");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        for out in [&input, &link, &hard, &dotted] {
            let mut plan = OutputPlan::new();
            plan.input(&input);
            let err = plan.output(out).unwrap_err();
            assert!(matches!(err, OutputClash::IsInput { .. }), "{out:?}: {err}");
            assert!(err.to_string().contains("in.pcap"));
        }
        let mut plan = OutputPlan::new();
        plan.input(&input);
        plan.output(&dir.path().join("out.pcap")).unwrap();
    }

    #[test]
    fn two_outputs_naming_one_file_are_refused_even_before_they_exist() {
        let dir = tempfile::tempdir().unwrap();
        let mut plan = OutputPlan::new();
        plan.output(&dir.path().join("a.jsonl")).unwrap();
        let again = dir.path().join("x/../a.jsonl");
        std::fs::create_dir(dir.path().join("x")).unwrap();
        assert!(matches!(
            plan.output(&again),
            Err(OutputClash::Twice { .. })
        ));
    }

    #[test]
    fn an_output_directory_inside_or_around_an_input_tree_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("caps");
        std::fs::create_dir_all(tree.join("day1")).unwrap();
        for out in [
            tree.clone(),
            tree.join("day1"),
            tree.join("new/deeper"),
            dir.path().to_path_buf(),
        ] {
            let mut plan = OutputPlan::new();
            plan.input(&tree);
            assert!(
                matches!(plan.output_dir(&out), Err(OutputClash::InsideInput { .. })),
                "{out:?}"
            );
        }
        let mut plan = OutputPlan::new();
        plan.input(&tree);
        plan.output_dir(&dir.path().join("sanitized")).unwrap();
    }

    #[test]
    fn an_atomic_file_appears_only_when_committed() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("deep/out.jsonl");
        let mut f = AtomicFile::create(&dest).unwrap();
        f.write_all(b"half").unwrap();
        assert!(!dest.exists());
        let tmp = f.tmp_path().to_path_buf();
        assert!(tmp.exists());
        f.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"half");
        assert!(!tmp.exists());

        // Dropped without a commit: nothing under the name, no temporary left behind, and an
        // older complete file stays.
        let mut f = AtomicFile::create(&dest).unwrap();
        f.write_all(b"new but unfinished").unwrap();
        let tmp = f.tmp_path().to_path_buf();
        drop(f);
        assert!(!tmp.exists());
        assert_eq!(std::fs::read(&dest).unwrap(), b"half");

        let mut f = AtomicFile::create(&dest).unwrap();
        f.write_all(b"part").unwrap();
        let p = f.keep_partial().unwrap();
        assert_eq!(p, dir.path().join("deep/out.jsonl.partial"));
        assert_eq!(std::fs::read(&dest).unwrap(), b"half");
    }
}
