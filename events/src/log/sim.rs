//! A simulated file system for tests: files in memory, and a power loss that
//! does what LazyFS does to a real one. Writes not yet synced are lost page
//! by page (4 KiB), pages reach the disk in any order, a page can be torn
//! (its first sectors new, the rest old), and an unsynced file length or
//! directory entry may or may not survive. Faults can be injected: a full
//! disk (a write stops where space ends, `ENOSPC`) and failing syncs (`EIO`).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::io::{LogFile, LogFs, OpenMode};

/// The unit in which unsynced writes survive or are lost.
pub(crate) const PAGE: usize = 4096;
/// The unit in which a page is torn.
const SECTOR: usize = 512;

/// A small deterministic random generator (splitmix64).
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A number in `lo..=hi`.
    pub(crate) fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Debug, Default)]
struct Inode {
    /// What reads see.
    data: Vec<u8>,
    /// What the disk holds for sure (as of the last sync).
    durable: Vec<u8>,
}

#[derive(Debug)]
struct State {
    inodes: Vec<Inode>,
    names: BTreeMap<PathBuf, usize>,
    durable_names: BTreeMap<PathBuf, usize>,
    dirs: BTreeSet<PathBuf>,
    rng: Rng,
    /// Mutating operations so far.
    ops: u64,
    /// The operation during which the power goes.
    crash_at: Option<u64>,
    /// The power is off: every operation fails until [`SimFs::power_cycle`].
    down: bool,
    /// Bytes the disk can hold (all files together), `None` for no limit.
    space: Option<u64>,
    /// Syncs still to fail with `EIO`.
    failing_syncs: u32,
}

impl State {
    /// Counts a mutating operation: `Ok(true)` if the power goes during it.
    fn tick(&mut self) -> io::Result<bool> {
        if self.down {
            return Err(power_off());
        }
        self.ops += 1;
        if self.crash_at.is_some_and(|at| self.ops >= at) {
            self.down = true;
            return Ok(true);
        }
        Ok(false)
    }

    fn used(&self) -> u64 {
        self.names
            .values()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|&i| self.inodes[i].data.len() as u64)
            .sum()
    }
}

fn power_off() -> io::Error {
    io::Error::other("simulated power loss")
}

/// The simulated file system. Clones share the same disk.
#[derive(Clone, Debug)]
pub(crate) struct SimFs {
    state: Arc<Mutex<State>>,
}

impl SimFs {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                inodes: Vec::new(),
                names: BTreeMap::new(),
                durable_names: BTreeMap::new(),
                dirs: BTreeSet::new(),
                rng: Rng::new(seed),
                ops: 0,
                crash_at: None,
                down: false,
                space: None,
                failing_syncs: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("sim fs lock")
    }

    /// Makes the power go during the `n`th mutating operation from now.
    pub(crate) fn crash_after(&self, n: u64) {
        let mut s = self.lock();
        s.crash_at = Some(s.ops + n.max(1));
    }

    /// Mutating operations so far (writes, syncs, truncations, creations,
    /// renames, removals).
    pub(crate) fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// Whether the power is off.
    pub(crate) fn is_down(&self) -> bool {
        self.lock().down
    }

    /// Limits the disk to `bytes` in all (`None`: no limit).
    pub(crate) fn set_space(&self, bytes: Option<u64>) {
        self.lock().space = bytes;
    }

    /// Bytes all files hold now.
    pub(crate) fn used(&self) -> u64 {
        self.lock().used()
    }

    /// Makes the next `n` syncs fail with `EIO` (what they were to write is
    /// not made durable).
    pub(crate) fn fail_syncs(&self, n: u32) {
        self.lock().failing_syncs = n;
    }

    /// Cuts the power now (if it is still on) and brings it back: every file
    /// and directory entry keeps what was synced; of the rest, each page
    /// independently is lost, kept, or torn, and unsynced lengths and entries
    /// may or may not survive.
    pub(crate) fn power_cycle(&self) {
        let mut guard = self.lock();
        let s = &mut *guard;
        let mut rng = s.rng.clone();
        if rng.chance(50) {
            s.names = s.durable_names.clone();
        } else {
            s.durable_names = s.names.clone();
        }
        for inode in &mut s.inodes {
            let after = crash_content(&inode.durable, &inode.data, &mut rng);
            inode.durable = after.clone();
            inode.data = after;
        }
        s.rng = rng;
        s.down = false;
        s.crash_at = None;
    }

    fn file(&self, inode: usize) -> Arc<dyn LogFile> {
        Arc::new(SimFile {
            state: self.state.clone(),
            inode,
        })
    }
}

/// What a file holds after a power loss: `old` (synced) where `new`
/// (written) was never synced, page by page.
fn crash_content(old: &[u8], new: &[u8], rng: &mut Rng) -> Vec<u8> {
    if old == new {
        return old.to_vec();
    }
    let len = match rng.below(4) {
        0 => old.len(),
        1 => new.len(),
        // A length in between (or past either), as a page rounded size.
        _ => {
            let (lo, hi) = (old.len().min(new.len()), old.len().max(new.len()));
            let lo_page = lo / PAGE;
            let hi_page = hi.div_ceil(PAGE);
            (rng.between(lo_page as u64, hi_page as u64) as usize * PAGE).clamp(lo, hi)
        }
    };
    let byte = |v: &[u8], i: usize| v.get(i).copied().unwrap_or(0);
    let mut out = vec![0u8; len];
    for page_start in (0..len).step_by(PAGE) {
        let page_end = (page_start + PAGE).min(len);
        let same = (page_start..page_end).all(|i| byte(old, i) == byte(new, i));
        let choice = if same { 1 } else { rng.below(5) };
        let new_until = match choice {
            // Lost: the old bytes (zeros past the old end).
            0 | 2 => page_start,
            // Written.
            1 | 3 => page_end,
            // Torn: the first sectors written.
            _ => page_start + SECTOR * rng.below((PAGE / SECTOR) as u64) as usize,
        };
        for (i, b) in out.iter_mut().enumerate().take(page_end).skip(page_start) {
            *b = if i < new_until {
                byte(new, i)
            } else {
                byte(old, i)
            };
        }
    }
    out
}

#[derive(Debug)]
struct SimFile {
    state: Arc<Mutex<State>>,
    inode: usize,
}

impl SimFile {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("sim fs lock")
    }
}

impl LogFile for SimFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let s = self.lock();
        if s.down {
            return Err(power_off());
        }
        let data = &s.inodes[self.inode].data;
        let start = offset as usize;
        if start + buf.len() > data.len() {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        buf.copy_from_slice(&data[start..start + buf.len()]);
        Ok(())
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut s = self.lock();
        let crashing = s.tick()?;
        let start = offset as usize;
        let mut n = buf.len();
        if crashing {
            n = s.rng.below(n as u64 + 1) as usize;
        }
        let mut full = false;
        if let Some(space) = s.space {
            let len = s.inodes[self.inode].data.len();
            let grows = (start + n).saturating_sub(len) as u64;
            let free = space.saturating_sub(s.used());
            if grows > free {
                n = (len + free as usize).saturating_sub(start).min(n);
                full = true;
            }
        }
        let data = &mut s.inodes[self.inode].data;
        if data.len() < start + n {
            data.resize(start + n, 0);
        }
        data[start..start + n].copy_from_slice(&buf[..n]);
        if crashing {
            return Err(power_off());
        }
        if full {
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC
        }
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut s = self.lock();
        if s.tick()? {
            return Err(power_off());
        }
        if s.failing_syncs > 0 {
            s.failing_syncs -= 1;
            return Err(io::Error::from_raw_os_error(5)); // EIO
        }
        let inode = &mut s.inodes[self.inode];
        inode.durable.clone_from(&inode.data);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.lock();
        if s.tick()? {
            return Err(power_off());
        }
        s.inodes[self.inode].data.resize(len as usize, 0);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        let s = self.lock();
        if s.down {
            return Err(power_off());
        }
        Ok(s.inodes[self.inode].data.len() as u64)
    }
}

impl LogFs for SimFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn LogFile>> {
        let mut s = self.lock();
        if mode == OpenMode::Create {
            if s.tick()? {
                return Err(power_off());
            }
            s.inodes.push(Inode::default());
            let inode = s.inodes.len() - 1;
            s.names.insert(path.to_path_buf(), inode);
            drop(s);
            return Ok(self.file(inode));
        }
        if s.down {
            return Err(power_off());
        }
        let inode = *s
            .names
            .get(path)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        drop(s);
        Ok(self.file(inode))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        if s.tick()? {
            return Err(power_off());
        }
        s.names
            .remove(path)
            .map(drop)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.lock();
        if s.tick()? {
            return Err(power_off());
        }
        let inode = s
            .names
            .remove(from)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        s.names.insert(to.to_path_buf(), inode);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        if s.tick()? {
            return Err(power_off());
        }
        let in_dir = |p: &PathBuf| p.parent() == Some(dir);
        s.durable_names.retain(|p, _| !in_dir(p));
        let entries: Vec<_> = s
            .names
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, &i)| (p.clone(), i))
            .collect();
        s.durable_names.extend(entries);
        Ok(())
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<bool> {
        let mut s = self.lock();
        if s.down {
            return Err(power_off());
        }
        Ok(s.dirs.insert(dir.to_path_buf()))
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let s = self.lock();
        if s.down {
            return Err(power_off());
        }
        if !s.dirs.contains(dir) {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        Ok(s.names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
            .collect())
    }

    fn exists(&self, path: &Path) -> bool {
        let s = self.lock();
        s.dirs.contains(path) || s.names.contains_key(path)
    }
}
