//! Links `catalog-overhead`, which holds five catalog plugins' crates natively. Each crate's
//! `trailhead_plugin::export!` defines the component ABI's exports (`init`, `process-spans`,
//! `cabi_post_*`) under the same unmangled names, and rustc keeps every such symbol of an rlib,
//! so they collide. Nothing calls them outside a component, so for that binary alone the
//! linker takes the first of each.
fn main() {
    println!("cargo::rustc-link-arg-bin=catalog-overhead=-Wl,--allow-multiple-definition");
}
