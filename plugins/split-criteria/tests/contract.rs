//! Both criteria pass the testkit's criterion contract.

use splitnas_plugin_split_criteria::{Exhaustive, Random};
use splitnas_plugin_testkit::criterion::{assert_contract, CriterionSuiteConfig};

#[test]
fn exhaustive_honours_the_criterion_contract() {
    // One child per allowed option: the suite asks for that many groups.
    assert_contract::<Exhaustive>(&CriterionSuiteConfig { one_child_per_option: true, ..CriterionSuiteConfig::default() });
}

#[test]
fn random_honours_the_criterion_contract() {
    assert_contract::<Random>(&CriterionSuiteConfig::default());
}
