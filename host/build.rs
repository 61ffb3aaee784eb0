//! Link flags for the `trailhead` binary only (its dependencies' builds are unaffected).

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        // Relative relocations packed (DT_RELR, glibc ≥ 2.36): a position-independent binary
        // keeps ASLR without a 1.5 MB relocation table the loader reads at every start, which
        // stayed resident for the process's life.
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
