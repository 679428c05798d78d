fn main() {
    let version =
        splitnas_build_support::libtorch_version().expect("cannot read the libtorch version next to DEP_TCH_LIBTORCH_LIB (run `cargo xtask setup`)");
    println!("cargo:rustc-env=SPLITNAS_LIBTORCH_VERSION={version}");
}
