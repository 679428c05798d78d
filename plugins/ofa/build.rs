fn main() {
    splitnas_build_support::link_libtorch_rpath();
}
