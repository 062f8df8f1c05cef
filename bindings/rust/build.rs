//! Finds libesp through pkg-config (`esp.pc`) and links it dynamically.
//!
//! In the libesp source tree the uninstalled build/pkgconfig/esp.pc is used
//! when no installed one is found, so `cargo test` works after `make lib`.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let in_tree =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("../../build/pkgconfig");

    let library = pkg_config::Config::new()
        .atleast_version("0.1.0")
        .probe("esp")
        .or_else(|first_error| {
            if !in_tree.join("esp.pc").exists() {
                return Err(first_error);
            }
            let mut path = env::var_os("PKG_CONFIG_PATH").unwrap_or_default();
            if !path.is_empty() {
                path.push(":");
            }
            path.push(&in_tree);
            env::set_var("PKG_CONFIG_PATH", path);
            pkg_config::Config::new()
                .atleast_version("0.1.0")
                .probe("esp")
        })
        .unwrap_or_else(|error| {
            panic!(
                "\n\nlibesp not found through pkg-config (esp.pc).\n\
                 Build it with `make lib` in the libesp tree and set\n\
                 PKG_CONFIG_PATH=<libesp>/build/pkgconfig, or `make install` it.\n\
                 pkg-config said: {error}\n"
            )
        });

    // An uninstalled libesp is not on the loader's path: give this crate's
    // tests, examples and benches an rpath, and hand the directory to
    // dependents as DEP_ESP_LIBDIR (`links = "esp"`) so they can do the same.
    for dir in &library.link_paths {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
        println!("cargo:libdir={}", dir.display());
    }
}
