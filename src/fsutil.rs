//! Atomic file and directory writes: write to a temporary sibling, then rename into place, so
//! a crash or a full disk never leaves a half-written index, dictionary or checkpoint.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Writes a file atomically: `write` fills a temporary file in the same directory, which is
/// flushed, synced and renamed over `path` only if `write` succeeded.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<&mut fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    let dir = parent_dir(path);
    fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".medlink-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| Error::io(&dir, e))?;
    {
        let mut w = BufWriter::new(tmp.as_file_mut());
        write(&mut w).map_err(|e| Error::io(path, e))?;
        w.flush().map_err(|e| Error::io(path, e))?;
    }
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// A directory being built next to its final place; [`StagingDir::commit`] renames it into place
/// (replacing an older directory of the same name), dropping it without commit removes it.
pub struct StagingDir {
    dir: Option<tempfile::TempDir>,
    target: PathBuf,
}

impl StagingDir {
    pub fn new(target: &Path) -> Result<Self> {
        let parent = parent_dir(target);
        fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
        let dir = tempfile::Builder::new()
            .prefix(".medlink-build-")
            .tempdir_in(&parent)
            .map_err(|e| Error::io(&parent, e))?;
        Ok(StagingDir {
            dir: Some(dir),
            target: target.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        self.dir
            .as_ref()
            .expect("staging dir present until commit")
            .path()
    }

    /// Moves the finished directory into place. An existing target is moved aside first and
    /// removed only after the new one is in place.
    pub fn commit(mut self) -> Result<PathBuf> {
        let dir = self.dir.take().expect("commit called once").keep();
        let old = if self.target.exists() {
            let aside = self
                .target
                .with_extension(format!("old-{}", std::process::id()));
            fs::rename(&self.target, &aside).map_err(|e| Error::io(&self.target, e))?;
            Some(aside)
        } else {
            None
        };
        if let Err(e) = fs::rename(&dir, &self.target) {
            if let Some(aside) = &old {
                let _ = fs::rename(aside, &self.target);
            }
            let _ = fs::remove_dir_all(&dir);
            return Err(Error::io(&self.target, e));
        }
        if let Some(aside) = old {
            let _ = fs::remove_dir_all(aside);
        }
        Ok(self.target.clone())
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Hex SHA-256 of the files, in order (a directory-format source hashes each file it reads).
pub fn sha256_files(paths: &[&Path]) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for path in paths {
        let mut file = fs::File::open(path).map_err(|e| Error::io(path, e))?;
        std::io::copy(&mut file, &mut hasher).map_err(|e| Error::io(path, e))?;
    }
    Ok(hex(&hasher.finalize()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
