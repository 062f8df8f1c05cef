//! Links libesp. By default the crate compiles the libesp sources it ships
//! (`libesp-src/`, generated from the repository's `src/` when the crate is
//! packaged; the repository's own `src/` in a checkout) with the `cc` crate and
//! links them statically: nothing to install but libcurl's and cJSON's
//! development files. The `system` feature, or `ESP_SYS_USE_PKG_CONFIG=1`,
//! links an installed libesp.so.0 (found through pkg-config) instead, so the
//! program shares one libesp, one pool, with every other language in it.
//! docs.rs builds (`DOCS_RS`) link nothing.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=ESP_SYS_USE_PKG_CONFIG");
    println!("cargo:rerun-if-env-changed=DOCS_RS");
    if env::var_os("DOCS_RS").is_some() {
        return;
    }
    let wants_system = env::var_os("CARGO_FEATURE_SYSTEM").is_some()
        || env::var("ESP_SYS_USE_PKG_CONFIG").is_ok_and(|v| v == "1");
    if wants_system {
        link_system();
    } else {
        compile_bundled(&source_root());
    }
}

/// The shipped sources, or the repository's when building in a checkout.
fn source_root() -> PathBuf {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    for root in [manifest.join("libesp-src"), manifest.join("../..")] {
        if root.join("include/esp.h").is_file() && root.join("src").is_dir() {
            return root;
        }
    }
    panic!(
        "\n\nlibesp's sources are not in this crate ({}/libesp-src) nor around it.\n\
         Enable the `system` feature (or set ESP_SYS_USE_PKG_CONFIG=1) to link an installed libesp.\n",
        manifest.display()
    );
}

/// The C libraries libesp links (pkg-config names): the one list, c-deps.txt.
fn c_dependencies(root: &Path) -> Vec<String> {
    let list = [root.join("c-deps.txt"), root.join("packaging/c-deps.txt")]
        .into_iter()
        .find(|p| p.is_file())
        .expect("c-deps.txt is missing from libesp's sources");
    println!("cargo:rerun-if-changed={}", list.display());
    fs::read_to_string(&list)
        .unwrap()
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect()
}

fn compile_bundled(root: &Path) {
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++17")
        .include(root.join("include"))
        .flag_if_supported("-fvisibility=hidden")
        .warnings(false);
    for dependency in c_dependencies(root) {
        let library = pkg_config::Config::new().probe(&dependency).unwrap_or_else(|error| {
            panic!(
                "\n\nlibesp needs {dependency} (with its development files) to compile its bundled sources\n\
                 (Debian/Ubuntu: see c-deps.txt for the package names). pkg-config said: {error}\n"
            )
        });
        build.includes(&library.include_paths);
    }
    let src = root.join("src");
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-changed={}", root.join("include/esp.h").display());
    let mut files: Vec<PathBuf> = fs::read_dir(&src)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "cpp"))
        .collect();
    files.sort();
    build.files(files).compile("esp");
    println!("cargo:include={}", root.join("include").display());
}

fn link_system() {
    let library = pkg_config::Config::new()
        .atleast_version(env!("CARGO_PKG_VERSION"))
        .probe("esp")
        .unwrap_or_else(|error| {
            panic!(
                "\n\nlibesp not found through pkg-config (esp.pc), and the `system` feature or\n\
                 ESP_SYS_USE_PKG_CONFIG=1 asks for an installed one. `make install` it, or set\n\
                 PKG_CONFIG_PATH=<libesp>/build/pkgconfig after `make lib` in its tree.\n\
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
