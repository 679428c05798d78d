fn main() {
    // Unit-test binaries load libtorch at run time.
    splitnas_build_support::link_libtorch_rpath();
}
