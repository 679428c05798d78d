//! Search algorithms for splitnas, one plugin library:
//!
//! - `darts`: softmax(α) mixture, α trained on validation batches, first or second order;
//! - `snas`: relaxed Gumbel-softmax samples, weights and α trained by one loss;
//! - `gdas`: hard Gumbel-softmax single path with straight-through gradients;
//! - `rsps`: uniform single-path training (RSPS/SPOS), best of N random architectures;
//! - `proxylessnas`: binary gates (one sampled path per weight step, two per architecture
//!   step), α by the binarized gradient, an optional expected-cost (FLOPs or latency) loss;
//! - `ofa`: progressive shrinking in phases (full network, kernel, depth, expand) with
//!   distillation from the full network, then evolution under a FLOPs window.
//!
//! Every algorithm sees a sub-supernet only through its [`AlgorithmSetup`] (choice points,
//! option counts, mask, device) and the host context, so none knows which space it searches.
//! All of them honour the mask: a disallowed option always gets weight exactly 0 and is never
//! in an `active` mask. Architecture parameters α are one `[choice points, max_options]` f32
//! tensor named `alpha`, created once and only ever updated in place.
//!
//! Randomness: Gumbel noise and α's initial values come from libtorch's generator (which the
//! host reseeds at epoch boundaries); RSPS's paths come from the host's `next_random`.
//!
//! [`AlgorithmSetup`]: splitnas_plugin_api::AlgorithmSetup

mod common;
mod darts;
mod gdas;
mod ofa;
mod ofa_predictor;
mod proxylessnas;
mod rsps;
mod snas;

pub use darts::Darts;
pub use gdas::Gdas;
pub use ofa::Ofa;
pub use proxylessnas::ProxylessNas;
pub use rsps::Rsps;
pub use snas::Snas;

splitnas_plugin_api::export_plugin!("algorithms");
splitnas_plugin_api::export_algorithm!(Darts);
splitnas_plugin_api::export_algorithm!(Gdas);
splitnas_plugin_api::export_algorithm!(Ofa);
splitnas_plugin_api::export_algorithm!(ProxylessNas);
splitnas_plugin_api::export_algorithm!(Rsps);
splitnas_plugin_api::export_algorithm!(Snas);

#[cfg(test)]
mod tests {
    use abi_stable::std_types::RStr;
    use splitnas_plugin_api::{
        registered_components, ArchitectureStep, ComponentFactory, ComponentKind, ErrorKind, SearchAlgorithmBox, TrainingProgress,
    };

    use splitnas_plugin_testkit::host::{test_setup, FakeHost};

    fn factory_of(
        name: &str,
    ) -> extern "C" fn(RStr<'_>, &splitnas_plugin_api::AlgorithmSetup) -> splitnas_plugin_api::PluginResult<SearchAlgorithmBox> {
        let component = registered_components().into_iter().find(|component| component.name.as_str() == name).unwrap();
        match component.factory {
            ComponentFactory::Algorithm(factory) => factory,
            _ => panic!("{name} is not an algorithm"),
        }
    }

    #[test]
    fn the_library_exports_six_algorithms_that_run_from_their_defaults_through_the_abi() {
        let components = registered_components();
        let names: Vec<&str> = components.iter().map(|component| component.name.as_str()).collect();
        assert_eq!(names, ["darts", "gdas", "ofa", "proxylessnas", "rsps", "snas"]);
        // ofa's defaults restrict the `kernel`, `expand` and `depth` groups of the ofa space and
        // last its 590 epochs: ofa_tests.rs runs it on an OFA-shaped space.
        for component in components.iter().filter(|component| component.name.as_str() != "ofa") {
            assert_eq!(component.kind(), ComponentKind::Algorithm);
            let host = FakeHost::new(41);
            let factory = factory_of(component.name.as_str());
            let mut algorithm = factory(component.default_config.as_rstr(), &test_setup()).into_result().unwrap();
            let progress = TrainingProgress { epoch: 0, total_epochs: 3 };
            algorithm.on_epoch_start(host.context(), progress).into_result().unwrap();
            let output = algorithm.weight_step(host.context(), &host.train_batch(0)).into_result().unwrap();
            assert_eq!(output.loss.tensor().size(), Vec::<i64>::new(), "{}: a scalar loss", component.name);
            let step = algorithm.architecture_step(host.context(), &host.valid_batch(0), &host.train_batch(0)).into_result().unwrap();
            let expects_loss = matches!(component.name.as_str(), "darts" | "gdas");
            assert_eq!(matches!(step, ArchitectureStep::Loss(_)), expects_loss, "{}", component.name);
            algorithm.context_sample(host.context()).into_result().unwrap();
            algorithm.evaluation_sample(host.context()).into_result().unwrap();
            let architecture = algorithm.derive(host.context()).into_result().unwrap();
            assert!(host.mask.contains(&architecture), "{}: {:?}", component.name, architecture.choices);
            let state = algorithm.state_json().into_result().unwrap();
            algorithm.load_state_json(state.as_rstr()).into_result().unwrap();
        }
    }

    /// Every algorithm passes the testkit's algorithm contract (masks, state, learning).
    #[test]
    fn every_algorithm_honours_the_algorithm_contract() {
        use splitnas_plugin_testkit::algorithm::{run_contract, AlgorithmSuiteConfig};
        let config = AlgorithmSuiteConfig::default();
        let reports = [
            run_contract::<crate::Darts>(&config),
            run_contract::<crate::Gdas>(&config),
            // α's own Adam at the suite's architecture learning rate, updated every step.
            run_contract::<crate::ProxylessNas>(&AlgorithmSuiteConfig {
                overrides: serde_json::json!({ "arch_lr": config.architecture_lr, "arch_update_every": 1 }),
                ..config.clone()
            }),
            run_contract::<crate::Rsps>(&config),
            run_contract::<crate::Snas>(&config),
        ];
        let failures: Vec<String> = reports.iter().filter(|report| !report.all_passed()).map(ToString::to_string).collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn a_misspelt_configuration_key_is_named_in_the_error() {
        for name in ["darts", "gdas", "ofa", "proxylessnas", "rsps", "snas"] {
            let error = factory_of(name)(RStr::from_str("{\"tau_maks\": 1.0}"), &test_setup()).into_result().err().unwrap();
            assert_eq!(error.kind, ErrorKind::InvalidConfig, "{name}");
            assert!(error.message.contains("tau_maks") && error.message.contains(name), "{name}: {}", error.message);
        }
    }
}
