//! Extension kinds, one file each.

mod bearertokenauth;
mod file_storage;
mod health_check;
mod zpages;
mod pprof;

pub use file_storage::open_storage;
pub use zpages::ZpagesConfig;
pub use self::pprof::PprofConfig;
