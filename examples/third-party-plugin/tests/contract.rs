//! Both components against the contract suites of splitnas-plugin-testkit, the checks a host
//! relies on (partitions, masks, state, learning a toy task).

use splitnas_plugin_gradient_extras::{FairDarts, GradientMatchingL2};
use splitnas_plugin_testkit::algorithm::{self, AlgorithmSuiteConfig};
use splitnas_plugin_testkit::criterion::{self, CriterionSuiteConfig};

#[test]
fn gm_l2_honours_the_criterion_contract() {
    // Groups of one, so that the suite's two-option choice point can be split.
    let config = CriterionSuiteConfig { overrides: serde_json::json!({"repeats": 4, "min_group_size": 1}), ..CriterionSuiteConfig::default() };
    criterion::assert_contract::<GradientMatchingL2>(&config);
}

#[test]
fn fair_darts_honours_the_algorithm_contract() {
    algorithm::assert_contract::<FairDarts>(&AlgorithmSuiteConfig::default());
}
