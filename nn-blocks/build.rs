fn main() {
    // Only the unit-test binary is a final artifact here; plugins linking this rlib set their own rpath.
    splitnas_build_support::link_libtorch_rpath();
}
