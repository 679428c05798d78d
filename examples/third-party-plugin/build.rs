fn main() {
    // The plugin and its test binaries find libtorch through an rpath: tch sets none.
    splitnas_build_support::link_libtorch_rpath();
    // With SPLITNAS_HOST_TORCH_ABI set (`torch_abi` of `splitnas info --json`), a build against
    // another libtorch release fails here, naming both, instead of being refused at load time.
    splitnas_build_support::check_host_torch_abi();
}
