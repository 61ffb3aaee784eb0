//! Extension kinds, one file each.

mod basicauth;
mod bearertokenauth;
mod file_storage;
mod headers_setter;
mod health_check;
mod oidc;
mod pprof;
mod zpages;

pub use self::pprof::PprofConfig;
pub use file_storage::open_storage;
pub use zpages::ZpagesConfig;
