fn main() {
    splitnas_build_support::link_libtorch_rpath();
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        splitnas_build_support::link_libtorch_cuda();
    }
}
