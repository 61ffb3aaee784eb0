//! Extension kinds, one file each.

mod bearertokenauth;
mod file_storage;
mod health_check;

pub use file_storage::open_storage;
