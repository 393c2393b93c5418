//! Directory mode: every regular file of an input directory sanitized into an output
//! directory, several files in parallel (each on one thread).

use super::{sanitize_file, FileOutcome, SanitizeError, SanitizeJob};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The regular files of an input directory, sorted (the order [`sanitize_dir`] reports in).
pub fn input_files(dir: &Path) -> Result<Vec<PathBuf>, SanitizeError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| SanitizeError::ListDir {
            path: dir.to_path_buf(),
            source,
        })?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Where directory mode writes the sanitized copy of `input`: same name in `outdir`, without a
/// `.gz` suffix (the output is not compressed, so the name must not say it is).
pub fn dir_output_name(outdir: &Path, input: &Path) -> PathBuf {
    let name = input.file_name().unwrap_or_default().to_string_lossy();
    let name = name
        .strip_suffix(".gz")
        .filter(|n| !n.is_empty())
        .unwrap_or(&name);
    outdir.join(name)
}

/// Sanitizes each of `files` into `outdir` (created if needed) under [`dir_output_name`],
/// `threads` files at a time. `on_done` sees each file's outcome as soon as it is finished
/// (from the thread that ran it). Returns one outcome per file, in the order of `files`;
/// `None` for a file never started because `job.stop` was raised first.
pub fn sanitize_dir(
    files: &[PathBuf],
    outdir: &Path,
    job: &SanitizeJob<'_>,
    threads: usize,
    on_done: &(dyn Fn(&Path, &FileOutcome) + Sync),
) -> Result<Vec<Option<FileOutcome>>, SanitizeError> {
    std::fs::create_dir_all(outdir).map_err(|source| SanitizeError::OutputDir {
        path: outdir.to_path_buf(),
        source,
    })?;
    let threads = threads.clamp(1, files.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<FileOutcome>>> =
        Mutex::new((0..files.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= files.len() || job.stop.load(Ordering::Relaxed) {
                    break;
                }
                let input = &files[i];
                let out = dir_output_name(outdir, input);
                // Files already run in parallel: each file on one thread.
                let r = sanitize_file(input, &out, job, None, false);
                on_done(input, &r);
                results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
            });
        }
    });
    Ok(results.into_inner().unwrap_or_else(|p| p.into_inner()))
}
