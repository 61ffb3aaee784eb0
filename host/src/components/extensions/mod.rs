//! Extension kinds, one file each.

mod bearertokenauth;
mod file_storage;
mod health_check;
mod pprof;
mod zpages;

pub use self::pprof::PprofConfig;
pub use file_storage::open_storage;
pub use zpages::ZpagesConfig;
