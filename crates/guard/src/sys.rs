//! Thin wrappers over the bpf(2) map commands, working on raw fds with the #[repr(C)] types of
//! `abi` (aya loads and attaches; these give byte-exact control over keys and values).

use crate::abi::{bytes_of, Pod};
use std::io;
use std::os::fd::RawFd;

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;

/// `BPF_ANY` update flag.
pub const BPF_ANY: u64 = 0;

#[repr(C)]
#[derive(Default)]
struct ElemAttr {
    map_fd: u32,
    pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<()> {
    bpf_ret(cmd, attr).map(|_| ())
}

/// bpf(2) returning the syscall's value (a new fd for the commands that open one).
fn bpf_ret<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<i64> {
    // SAFETY: attr points to a properly sized, initialised bpf_attr prefix for `cmd`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Inserts or replaces one element.
pub fn update<K: Pod, V: Pod>(fd: RawFd, key: &K, value: &V, flags: u64) -> io::Result<()> {
    let mut a = ElemAttr {
        map_fd: fd as u32,
        key: bytes_of(key).as_ptr() as u64,
        value: bytes_of(value).as_ptr() as u64,
        flags,
        ..Default::default()
    };
    bpf(BPF_MAP_UPDATE_ELEM, &mut a)
}

/// Inserts many elements in one syscall; falls back to single updates where batching is not
/// supported by the map type.
pub fn update_many<K: Pod, V: Pod>(fd: RawFd, keys: &[K], values: &[V]) -> io::Result<()> {
    assert_eq!(keys.len(), values.len());
    let mut done = 0usize;
    while done < keys.len() {
        let n = (keys.len() - done).min(65536);
        let mut a = BatchAttr {
            keys: keys[done..].as_ptr() as u64,
            values: values[done..].as_ptr() as u64,
            count: n as u32,
            map_fd: fd as u32,
            ..Default::default()
        };
        match bpf(BPF_MAP_UPDATE_BATCH, &mut a) {
            Ok(()) => done += a.count as usize,
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINVAL | libc::EOPNOTSUPP | 524)
                ) =>
            {
                for i in done..keys.len() {
                    update(fd, &keys[i], &values[i], BPF_ANY)?;
                }
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Looks up one element.
pub fn lookup<K: Pod, V: Pod + Default>(fd: RawFd, key: &K) -> io::Result<Option<V>> {
    let mut v = V::default();
    let mut a = ElemAttr {
        map_fd: fd as u32,
        key: bytes_of(key).as_ptr() as u64,
        value: (&mut v as *mut V) as u64,
        ..Default::default()
    };
    match bpf(BPF_MAP_LOOKUP_ELEM, &mut a) {
        Ok(()) => Ok(Some(v)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Looks up a per-CPU u64 value and returns one value per possible CPU.
pub fn lookup_percpu_u64(fd: RawFd, key: u32, ncpus: usize, buf: &mut Vec<u64>) -> io::Result<()> {
    buf.clear();
    buf.resize(ncpus, 0);
    let mut a = ElemAttr {
        map_fd: fd as u32,
        key: (&key as *const u32) as u64,
        value: buf.as_mut_ptr() as u64,
        ..Default::default()
    };
    bpf(BPF_MAP_LOOKUP_ELEM, &mut a)
}

/// Deletes one element (Ok(false) when absent).
pub fn delete<K: Pod>(fd: RawFd, key: &K) -> io::Result<bool> {
    let mut a = ElemAttr {
        map_fd: fd as u32,
        key: bytes_of(key).as_ptr() as u64,
        ..Default::default()
    };
    match bpf(BPF_MAP_DELETE_ELEM, &mut a) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Returns the key after `prev` (the first key when None); None at the end.
pub fn next_key<K: Pod + Default>(fd: RawFd, prev: Option<&K>) -> io::Result<Option<K>> {
    let mut next = K::default();
    let mut a = ElemAttr {
        map_fd: fd as u32,
        key: prev.map(|k| bytes_of(k).as_ptr() as u64).unwrap_or(0),
        value: (&mut next as *mut K) as u64,
        ..Default::default()
    };
    match bpf(BPF_MAP_GET_NEXT_KEY, &mut a) {
        Ok(()) => Ok(Some(next)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Collects all keys of a map (snapshot; concurrent changes may skip or repeat keys).
pub fn keys<K: Pod + Default>(fd: RawFd) -> io::Result<Vec<K>> {
    let mut out = Vec::new();
    let mut prev: Option<K> = None;
    while let Some(k) = next_key(fd, prev.as_ref())? {
        out.push(k);
        prev = Some(k);
        if out.len() > 64 << 20 {
            break;
        }
    }
    Ok(out)
}

/// Number of possible CPUs (per-CPU map value count).
pub fn possible_cpus() -> io::Result<usize> {
    let s = std::fs::read_to_string("/sys/devices/system/cpu/possible")?;
    let mut n = 0;
    for part in s.trim().split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let a: usize = a.parse().map_err(|_| io::Error::other("bad cpu list"))?;
        let b: usize = b.parse().map_err(|_| io::Error::other("bad cpu list"))?;
        n = n.max(b + 1).max(a + 1);
    }
    Ok(n)
}

const BPF_OBJ_GET: libc::c_long = 7;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_LINK_GET_FD_BY_ID: libc::c_long = 30;

#[repr(C)]
#[derive(Default)]
struct ObjGetAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
    path_fd: i32,
    pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

#[repr(C)]
#[derive(Default)]
struct IdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

/// Id of the BPF link pinned at `path` (None if it is not a readable pinned link).
pub fn pinned_link_id(path: &std::path::Path) -> Option<u32> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut a = ObjGetAttr {
        pathname: c.as_ptr() as u64,
        ..Default::default()
    };
    let fd = bpf_ret(BPF_OBJ_GET, &mut a).ok()?;
    // struct bpf_link_info starts with type (u32) and id (u32)
    let mut info = [0u32; 32];
    let mut ia = InfoAttr {
        bpf_fd: fd as u32,
        info_len: std::mem::size_of_val(&info) as u32,
        info: info.as_mut_ptr() as u64,
    };
    let r = bpf(BPF_OBJ_GET_INFO_BY_FD, &mut ia);
    // SAFETY: fd was returned by BPF_OBJ_GET above.
    unsafe { libc::close(fd as i32) };
    r.ok().map(|_| info[1])
}

/// True while a BPF link with this id still exists.
pub fn link_exists(id: u32) -> bool {
    let mut a = IdAttr {
        id,
        ..Default::default()
    };
    match bpf_ret(BPF_LINK_GET_FD_BY_ID, &mut a) {
        Ok(fd) => {
            // SAFETY: fd from the kernel, closed once.
            unsafe { libc::close(fd as i32) };
            true
        }
        Err(_) => false,
    }
}
