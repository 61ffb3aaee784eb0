//! Compiled components kept on disk, so a restart does not compile its plugins again (a
//! Python plugin takes ~8 s to compile, a JavaScript one ~11 s).
//!
//! An entry is named by the component's sha256 and a hash of what makes compiled code fit an
//! engine: wasmtime's version, this engine's settings and the CPU features it found
//! (`precompile_compatibility_hash`). A component compiled by another build, with other
//! settings or on another CPU, is simply another name.
//!
//! wasmtime cannot check that serialized code is sound, so an entry is never trusted as read:
//! its file starts with a magic line and the sha256 of its name and the artifact after it, and
//! an entry whose digest does not match (a torn write, a flipped bit, a foreign file or another
//! component's entry under this name) is deleted and compiled again. wasmtime then checks its
//! own header. The digest guards against corruption, not against an attacker: whoever can write
//! the entries can run code in trailhead, so they live in a folder `trailhead/` inside the
//! given directory that only trailhead's user may write, and the cache is refused otherwise.
//!
//! Entries are bounded: after each write the least recently used ones go until the folder
//! holds at most `TRAILHEAD_PLUGIN_CACHE_MAX_MIB` (192 by default), so hot swaps cannot fill
//! the volume (the chart's emptyDir would get the pod evicted).

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use wasmtime::Engine;

/// The first bytes of every entry: what it is, and the layout version.
const MAGIC: &[u8; 16] = b"trailhead-cwasm2";
/// The magic and the digest, before the artifact.
const HEADER: usize = MAGIC.len() + 32;
/// The entries' folder inside the configured directory.
const ENTRIES: &str = "trailhead";
/// A temporary file this old was left by a process that died while writing it.
const STALE_TEMPORARY: Duration = Duration::from_secs(3600);

/// Where `TRAILHEAD_PLUGIN_CACHE` points, if it is set and not empty.
pub fn from_env() -> Option<PathBuf> {
    std::env::var_os("TRAILHEAD_PLUGIN_CACHE")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
}

/// `TRAILHEAD_PLUGIN_CACHE_MAX_MIB`, in bytes (192 MiB by default).
fn max_bytes_from_env() -> u64 {
    let mib = std::env::var("TRAILHEAD_PLUGIN_CACHE_MAX_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(192);
    mib << 20
}

/// A directory of compiled components for one engine.
#[derive(Debug, Clone)]
pub struct DiskCache {
    /// The entries' folder (`<dir>/trailhead`).
    dir: PathBuf,
    /// wasmtime's version, the engine's settings and the CPU's features, as one hex string.
    engine_key: String,
    /// What the entries may take together.
    max_bytes: u64,
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
    /// The cache in `dir`, in its [`private_folder`].
    pub fn open(dir: &Path, engine: &Engine) -> Result<DiskCache, String> {
        let entries = private_folder(dir)?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(DiskCache {
            dir: entries,
            engine_key: format!("{:016x}", hasher.finish()),
            max_bytes: max_bytes_from_env(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn name(&self, sha256: &str) -> String {
        format!("{sha256}-{}", self.engine_key)
    }

    /// The entry's file for a component.
    pub fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{}.cwasm", self.name(sha256)))
    }

    /// The artifact compiled before from the component with this sha256, checked.
    pub fn get(&self, sha256: &str) -> Lookup {
        let path = self.path(sha256);
        let Ok(mut bytes) = std::fs::read(&path) else {
            return Lookup::Miss;
        };
        if !sound(&bytes, &self.name(sha256)) {
            self.remove(sha256);
            return Lookup::Corrupt;
        }
        // Used now: the last to be pruned.
        let _ = std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(SystemTime::now()));
        bytes.drain(..HEADER);
        Lookup::Hit(bytes)
    }

    /// Drops an entry (one wasmtime refused to deserialize, say).
    pub fn remove(&self, sha256: &str) {
        let _ = std::fs::remove_file(self.path(sha256));
    }

    /// Stores an artifact, atomically: a reader sees the old entry, no entry, or the whole new
    /// one, never a torn write. Then prunes the folder to its bound.
    pub fn put(&self, sha256: &str, artifact: &[u8]) -> std::io::Result<PathBuf> {
        let path = self.path(sha256);
        let mut file = tempfile::NamedTempFile::new_in(&self.dir)?;
        file.write_all(MAGIC)?;
        file.write_all(&digest(&self.name(sha256), artifact))?;
        file.write_all(artifact)?;
        file.as_file().sync_all()?;
        file.persist(&path).map_err(|e| e.error)?;
        self.prune(&path);
        Ok(path)
    }

    /// Deletes the least recently used entries until the rest fit the bound (`keep`, just
    /// written, stays), and temporary files a dead process left.
    fn prune(&self, keep: &Path) {
        let Ok(listing) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let now = SystemTime::now();
        let mut entries = Vec::new();
        for entry in listing.flatten() {
            let (path, Ok(meta)) = (entry.path(), entry.metadata()) else {
                continue;
            };
            let used = meta.modified().unwrap_or(now);
            if path.extension().is_some_and(|e| e == "cwasm") {
                entries.push((used, meta.len(), path));
            } else if now.duration_since(used).unwrap_or_default() > STALE_TEMPORARY {
                let _ = std::fs::remove_file(&path);
            }
        }
        // Most recently used first.
        entries.sort_by_key(|entry| std::cmp::Reverse(entry.0));
        let mut total = 0;
        for (_, len, path) in entries {
            total += len;
            if total > self.max_bytes && path != keep {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

/// The entries' folder inside `dir` (`<dir>/trailhead`), made private to this user if it is
/// new. Refused when it belongs to another user or others may write it.
pub fn private_folder(dir: &Path) -> Result<PathBuf, String> {
    let entries = dir.join(ENTRIES);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&entries)
        .map_err(|e| format!("{}: {e}", entries.display()))?;
    let meta = std::fs::metadata(&entries).map_err(|e| format!("{}: {e}", entries.display()))?;
    // Who we are, as the filesystem sees it: the owner of a file we make.
    let user = tempfile::tempfile_in(&entries)
        .and_then(|probe| probe.metadata())
        .map_err(|e| format!("{}: {e}", entries.display()))?
        .uid();
    if meta.uid() != user || meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{} is not private to this user (owner {}, mode {:o}): compiled plugins are not cached",
            entries.display(),
            meta.uid(),
            meta.mode() & 0o777
        ));
    }
    Ok(entries)
}

/// What an entry's header holds: the sha256 of its name and its artifact, so an entry is sound
/// only under the name it was written for.
fn digest(name: &str, artifact: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update(artifact);
    hasher.finalize().into()
}

/// Whether an entry's magic and digest hold for `name`.
fn sound(entry: &[u8], name: &str) -> bool {
    let Some(rest) = entry.strip_prefix(MAGIC.as_slice()) else {
        return false;
    };
    match rest.split_at_checked(32) {
        Some((stored, artifact)) => stored == digest(name, artifact),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(dir: &Path) -> DiskCache {
        DiskCache::open(dir, &Engine::default()).unwrap()
    }

    fn files(dir: &Path) -> usize {
        std::fs::read_dir(dir.join(ENTRIES)).unwrap().count()
    }

    #[test]
    fn an_entry_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache(dir.path());
        assert_eq!(cache.get("abc"), Lookup::Miss);
        cache.put("abc", b"compiled code").unwrap();
        assert_eq!(cache.get("abc"), Lookup::Hit(b"compiled code".to_vec()));
        // Only the entry is left: the temporary file was renamed into place.
        assert_eq!(files(dir.path()), 1);
    }

    #[test]
    fn a_corrupt_foreign_or_misnamed_entry_is_deleted_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache(dir.path());
        let path = cache.put("abc", b"compiled code").unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(cache.get("abc"), Lookup::Corrupt);
        assert!(!path.exists());

        // A file under our name that is not one of our entries at all (short, or no magic).
        for foreign in [&b"\x7fELF"[..], &b"trailhead-cwasm2 too short"[..]] {
            std::fs::write(&path, foreign).unwrap();
            assert_eq!(cache.get("abc"), Lookup::Corrupt);
        }
        // A sound entry of another component, copied under this one's name.
        let other = cache.put("def", b"other code").unwrap();
        std::fs::copy(&other, &path).unwrap();
        assert_eq!(cache.get("abc"), Lookup::Corrupt);
    }

    #[test]
    fn other_engine_settings_are_another_entry() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let other = DiskCache::open(dir.path(), &Engine::new(&config).unwrap()).unwrap();
        assert_ne!(cache(dir.path()).path("abc"), other.path("abc"));
    }

    #[test]
    fn the_least_recently_used_entries_go_past_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskCache {
            max_bytes: 2 * (HEADER as u64 + 100),
            ..cache(dir.path())
        };
        let old = std::time::SystemTime::now() - Duration::from_secs(60);
        for name in ["a", "b"] {
            let path = cache.put(name, &[0; 100]).unwrap();
            std::fs::File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        // `a` is used again, so `b` is the least recently used when `c` arrives.
        assert!(matches!(cache.get("a"), Lookup::Hit(_)));
        cache.put("c", &[0; 100]).unwrap();
        assert!(matches!(cache.get("a"), Lookup::Hit(_)));
        assert_eq!(cache.get("b"), Lookup::Miss);
        assert!(matches!(cache.get("c"), Lookup::Hit(_)));
    }

    #[test]
    fn a_folder_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        cache(dir.path());
        let entries = dir.path().join(ENTRIES);
        std::fs::set_permissions(&entries, std::fs::Permissions::from_mode(0o777)).unwrap();
        let refused = DiskCache::open(dir.path(), &Engine::default()).unwrap_err();
        assert!(refused.contains("not private"), "{refused}");
    }
}
