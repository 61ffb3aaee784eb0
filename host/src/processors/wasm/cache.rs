//! Compiled components kept on disk, so a restart does not compile its plugins again (a
//! Python plugin takes ~8 s to compile, a JavaScript one ~11 s).
//!
//! An entry is named by the component's sha256 and a hash of what makes compiled code fit an
//! engine: wasmtime's version and this engine's settings (`precompile_compatibility_hash`). A
//! component compiled by another build, or with other settings, is simply another name.
//!
//! wasmtime cannot check that serialized code is sound, so an entry is never trusted as read:
//! its file starts with a magic line and the sha256 of the artifact after it, and an entry
//! whose digest does not match (a torn write, a flipped bit, a foreign file under our name) is
//! deleted and compiled again. wasmtime then checks its own header (version, target, settings).
//! The digest guards against corruption, not against an attacker: whoever can write the cache
//! directory can run code in trailhead, so it must be writable by trailhead alone (the chart
//! mounts an emptyDir).

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use wasmtime::Engine;

/// The first bytes of every entry: what it is, and the layout version.
const MAGIC: &[u8; 16] = b"trailhead-cwasm1";

/// Where `TRAILHEAD_PLUGIN_CACHE` points, if it is set and not empty.
pub fn from_env() -> Option<PathBuf> {
    std::env::var_os("TRAILHEAD_PLUGIN_CACHE")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
}

/// A directory of compiled components for one engine.
#[derive(Debug, Clone)]
pub struct DiskCache {
    dir: PathBuf,
    /// wasmtime's version and the engine's settings, as one hex string.
    engine_key: String,
}

/// What a lookup found.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A sound entry: the artifact, to deserialize.
    Hit(Vec<u8>),
    /// No entry.
    Miss,
    /// An entry that failed its digest; it was deleted.
    Corrupt,
}

impl DiskCache {
    pub fn new(dir: &Path, engine: &Engine) -> DiskCache {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        DiskCache {
            dir: dir.to_path_buf(),
            engine_key: format!("{:016x}", hasher.finish()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entry's file for a component.
    pub fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_key))
    }

    /// The artifact compiled before from the component with this sha256, checked.
    pub fn get(&self, sha256: &str) -> Lookup {
        let path = self.path(sha256);
        let Ok(bytes) = std::fs::read(&path) else {
            return Lookup::Miss;
        };
        match unwrap_entry(&bytes) {
            Some(artifact) => Lookup::Hit(artifact.to_vec()),
            None => {
                self.remove(sha256);
                Lookup::Corrupt
            }
        }
    }

    /// Drops an entry (one wasmtime refused to deserialize, say).
    pub fn remove(&self, sha256: &str) {
        let _ = std::fs::remove_file(self.path(sha256));
    }

    /// Stores an artifact, atomically: a reader sees the old entry, no entry, or the whole new
    /// one, never a torn write.
    pub fn put(&self, sha256: &str, artifact: &[u8]) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.path(sha256);
        let mut file = tempfile::NamedTempFile::new_in(&self.dir)?;
        file.write_all(MAGIC)?;
        file.write_all(&Sha256::digest(artifact))?;
        file.write_all(artifact)?;
        file.as_file().sync_all()?;
        file.persist(&path).map_err(|e| e.error)?;
        Ok(path)
    }
}

/// The artifact of an entry, if its magic and digest hold.
fn unwrap_entry(entry: &[u8]) -> Option<&[u8]> {
    let rest = entry.strip_prefix(MAGIC.as_slice())?;
    let (digest, artifact) = rest.split_at_checked(32)?;
    (Sha256::digest(artifact).as_slice() == digest).then_some(artifact)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(dir: &Path) -> DiskCache {
        DiskCache::new(dir, &Engine::default())
    }

    #[test]
    fn an_entry_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache(dir.path());
        assert_eq!(cache.get("abc"), Lookup::Miss);
        cache.put("abc", b"compiled code").unwrap();
        assert_eq!(cache.get("abc"), Lookup::Hit(b"compiled code".to_vec()));
        // Only the entry is left: the temporary file was renamed into place.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_corrupt_or_foreign_entry_is_deleted_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache(dir.path());
        let path = cache.put("abc", b"compiled code").unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(cache.get("abc"), Lookup::Corrupt);
        assert!(!path.exists());

        // A file under our name that is not one of our entries at all (short, or no magic).
        for foreign in [&b"\x7fELF"[..], &b"trailhead-cwasm1 too short"[..]] {
            std::fs::write(&path, foreign).unwrap();
            assert_eq!(cache.get("abc"), Lookup::Corrupt);
        }
    }

    #[test]
    fn other_engine_settings_are_another_entry() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let other = DiskCache::new(dir.path(), &Engine::new(&config).unwrap());
        assert_ne!(cache(dir.path()).path("abc"), other.path("abc"));
    }
}
