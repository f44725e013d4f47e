use std::cell::Cell;

use super::*;

thread_local! {
    /// Makes the next atomic write on this thread fail after the temporary file is
    /// complete and before the rename, as a crash or a full disk would.
    static FAIL_BEFORE_RENAME: Cell<bool> = const { Cell::new(false) };
}

pub(crate) fn fault_before_rename() -> io::Result<()> {
    if FAIL_BEFORE_RENAME.with(|f| f.replace(false)) {
        return Err(io::Error::other("injected failure before rename"));
    }
    Ok(())
}

pub(crate) fn fail_next_rename() {
    FAIL_BEFORE_RENAME.with(|f| f.set(true));
}

/// The names in `dir`, sorted.
pub(crate) fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn atomic_write_creates_and_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    write_atomically(&path, b"first").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"first");
    #[cfg(unix)]
    assert_eq!(mode(&path), 0o600);

    // A rewrite replaces the file (a new inode), and is private too, whatever the
    // old file's mode was.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    }
    write_atomically(&path, b"second").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"second");
    #[cfg(unix)]
    assert_eq!(mode(&path), 0o600);
    // No temporary file is left behind.
    assert_eq!(dir_entries(dir.path()), ["keys.json"]);
}

#[test]
fn failed_write_leaves_the_old_file_intact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    write_atomically(&path, b"old contents").unwrap();

    fail_next_rename();
    let err = write_atomically(&path, b"new contents").unwrap_err();
    assert!(matches!(err, Error::Write { .. }), "{err:?}");
    assert_eq!(fs::read(&path).unwrap(), b"old contents");
    assert_eq!(
        dir_entries(dir.path()),
        ["keys.json"],
        "the temporary file is removed"
    );

    // The next write goes through.
    write_atomically(&path, b"new contents").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"new contents");
}

#[cfg(unix)]
#[test]
fn unwritable_directory_leaves_the_old_file_intact() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    write_atomically(&path, b"old contents").unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o500)).unwrap();
    // Root ignores directory permissions; the injected failure above covers that case.
    let probe = dir.path().join("probe");
    let privileged = fs::write(&probe, b"").is_ok();
    if !privileged {
        let err = write_atomically(&path, b"new contents").unwrap_err();
        assert!(matches!(err, Error::Write { .. }), "{err:?}");
        assert_eq!(fs::read(&path).unwrap(), b"old contents");
    }
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
    let _ = fs::remove_file(&probe);
}

#[test]
fn a_crashed_writers_temporary_file_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    write_atomically(&path, b"complete").unwrap();
    // What a crash between creating and renaming the temporary file leaves.
    let stale = dir.path().join(".keys.json.tmp-1-0011223344556677");
    fs::write(&stale, b"{\"header\":").unwrap();
    assert_eq!(read_store_file(&path).unwrap(), b"complete");
    write_atomically(&path, b"next").unwrap();
    assert_eq!(read_store_file(&path).unwrap(), b"next");
}

#[test]
fn temporary_files_are_hidden_siblings() {
    let path = Path::new("/var/lib/xks/keys.json");
    let temp = temp_path(path).unwrap();
    assert_eq!(temp.parent(), path.parent());
    let name = temp.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with(".keys.json.tmp-"), "{name}");
    assert_ne!(temp, temp_path(path).unwrap(), "names are unique");
    assert_eq!(parent_dir(Path::new("keys.json")), Path::new("."));
    assert_eq!(lock_path(path), Path::new("/var/lib/xks/keys.json.lock"));
    assert!(matches!(
        temp_path(Path::new("/")),
        Err(Error::Write { .. })
    ));
}

#[test]
fn missing_file_is_a_read_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = read_store_file(&dir.path().join("nope.json")).unwrap_err();
    match err {
        Error::Read { path, source } => {
            assert!(path.ends_with("nope.json"));
            assert_eq!(source.kind(), io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_lock_is_exclusive_until_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    let lock = StoreLock::acquire(&path).unwrap();
    #[cfg(unix)]
    assert_eq!(mode(&lock_path(&path)), 0o600);

    // Another open file description (as another process would have) cannot lock.
    let other = File::options().write(true).open(lock_path(&path)).unwrap();
    assert!(other.try_lock().is_err());

    // A second acquire waits until the first lock is dropped.
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _second = StoreLock::acquire(&path).unwrap();
        tx.send(()).unwrap();
    });
    assert!(
        rx.recv_timeout(std::time::Duration::from_millis(200))
            .is_err()
    );
    drop(lock);
    rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    waiter.join().unwrap();
    assert!(other.try_lock().is_ok());
}
