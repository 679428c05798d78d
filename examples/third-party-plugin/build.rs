fn main() {
    // The plugin and its test binaries find libtorch through an rpath: tch sets none.
    splitnas_build_support::link_libtorch_rpath();
}
