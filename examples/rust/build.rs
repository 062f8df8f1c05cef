//! libesp may be uninstalled (a build tree): its -sys side tells us where it
//! is (DEP_ESP_LIBDIR, from `links = "esp"`), and we put that on the rpath.
fn main() {
    if let Ok(dir) = std::env::var("DEP_ESP_LIBDIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
