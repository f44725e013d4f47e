//! File handling: bounded reads, atomic replacement, and the advisory lock.
//!
//! An update never writes the key store in place. It writes a temporary file in
//! the same directory, flushes it to disk, renames it over the key store and then
//! flushes the directory, so that after a crash at any point the path holds either
//! the complete old key store or the complete new one. Operator commands that
//! change the key store hold an exclusive lock on a sibling lock file for the whole
//! read-modify-write, so concurrent commands never lose each other's changes.
//! Readers (the proxy loading or reloading) take no lock: a rename is atomic.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::Error;

/// The largest key store file accepted, far above any realistic key set.
pub(crate) const MAX_STORE_LEN: u64 = 64 * 1024 * 1024;

/// An exclusive advisory lock on a key store, released when dropped.
#[derive(Debug)]
pub(crate) struct StoreLock {
    file: File,
}

/// Creates a new file readable and writable by its owner only; fails if the path
/// exists.
pub(crate) fn create_new_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Reads the whole file, refusing files larger than [`MAX_STORE_LEN`].
pub(crate) fn read_store_file(path: &Path) -> Result<Vec<u8>, Error> {
    let file = File::open(path).map_err(|e| Error::read(path, e))?;
    let mut contents = Vec::new();
    file.take(MAX_STORE_LEN + 1)
        .read_to_end(&mut contents)
        .map_err(|e| Error::read(path, e))?;
    if contents.len() as u64 > MAX_STORE_LEN {
        return Err(Error::malformed("the file is larger than any key store"));
    }
    Ok(contents)
}

/// Replaces the file at `path` with `contents`, atomically and durably.
///
/// The new file has mode 0600. If anything fails before the rename, the old file
/// is untouched and the temporary file is removed.
pub(crate) fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), Error> {
    let temp = temp_path(path)?;
    let written = write_temp(&temp, contents).and_then(|()| {
        #[cfg(test)]
        tests::fault_before_rename()?;
        fs::rename(&temp, path)
    });
    if let Err(e) = written {
        // Best effort: a leftover temporary file is harmless, never read.
        let _ = fs::remove_file(&temp);
        return Err(Error::write(path, e));
    }
    sync_parent_dir(path)
}

fn write_temp(temp: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = create_new_private(temp)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// A fresh name in the same directory as `path`, so the rename stays within one
/// file system: `.<name>.tmp-<pid>-<random>`.
fn temp_path(path: &Path) -> Result<PathBuf, Error> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::write(path, io::Error::other("the path names no file")))?;
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(Error::random)?;
    let mut temp = OsString::from(".");
    temp.push(name);
    temp.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        hex::encode(nonce)
    ));
    Ok(path.with_file_name(temp))
}

/// Flushes the directory holding `path`, so a rename or creation in it survives a
/// crash.
pub(crate) fn sync_parent_dir(path: &Path) -> Result<(), Error> {
    let dir = parent_dir(path);
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::write(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// The lock file of the key store at `path`: `<name>.lock` beside it.
pub(crate) fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

// === impl StoreLock ===

impl StoreLock {
    /// Takes the exclusive lock of the key store at `path`, waiting for other
    /// holders. The lock file is created if needed and never removed (removing it
    /// would let two writers lock two different files).
    pub(crate) fn acquire(path: &Path) -> Result<Self, Error> {
        let lock_path = lock_path(path);
        let lock_err = |source| Error::Lock {
            path: lock_path.clone(),
            source,
        };
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(&lock_path).map_err(lock_err)?;
        file.lock().map_err(lock_err)?;
        Ok(Self { file })
    }
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking first makes it prompt.
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
pub(crate) mod tests;
