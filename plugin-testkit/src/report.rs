//! What a contract suite reports: every check by name, with its outcome.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use splitnas_plugin_api::panic_message;

/// How one check ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Passed,
    /// What is wrong, for the plugin's author.
    Failed(String),
    /// The check could not run (an optional feature the plugin does not offer, or an earlier
    /// failure it depends on).
    Skipped(String),
}

/// One check of a suite.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckResult {
    pub name: &'static str,
    pub outcome: Outcome,
}

/// Every check a suite ran, in order.
#[derive(Clone, Debug, Default)]
pub struct ContractReport {
    /// Which suite and which component (`space contract of nb201`).
    pub subject: String,
    pub checks: Vec<CheckResult>,
}

impl ContractReport {
    pub fn new(subject: impl Into<String>) -> Self {
        ContractReport { subject: subject.into(), checks: Vec::new() }
    }

    /// Runs `check` as the check `name`: `Err` or a panic is a failure.
    pub fn run(&mut self, name: &'static str, check: impl FnOnce() -> Result<(), String>) {
        let outcome = match catch_unwind(AssertUnwindSafe(check)) {
            Ok(Ok(())) => Outcome::Passed,
            Ok(Err(message)) => Outcome::Failed(message),
            Err(payload) => Outcome::Failed(format!("panicked: {}", panic_message(payload.as_ref()))),
        };
        self.checks.push(CheckResult { name, outcome });
    }

    /// Records a check that could not run.
    pub fn skip(&mut self, name: &'static str, reason: impl Into<String>) {
        self.checks.push(CheckResult { name, outcome: Outcome::Skipped(reason.into()) });
    }

    /// Records a check whose outcome was decided elsewhere.
    pub fn record(&mut self, name: &'static str, outcome: Outcome) {
        self.checks.push(CheckResult { name, outcome });
    }

    pub fn outcome(&self, name: &str) -> Option<&Outcome> {
        self.checks.iter().find(|check| check.name == name).map(|check| &check.outcome)
    }

    /// The names of the failed checks, in order.
    pub fn failed_names(&self) -> Vec<&'static str> {
        self.checks.iter().filter(|check| matches!(check.outcome, Outcome::Failed(_))).map(|check| check.name).collect()
    }

    pub fn passed_names(&self) -> Vec<&'static str> {
        self.checks.iter().filter(|check| check.outcome == Outcome::Passed).map(|check| check.name).collect()
    }

    /// No check failed (skipped ones do not count).
    pub fn all_passed(&self) -> bool {
        self.failed_names().is_empty()
    }

    /// Panics with every failure when any check failed.
    pub fn assert_passed(&self) {
        assert!(self.all_passed(), "{self}");
    }
}

impl fmt::Display for ContractReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failed = self.failed_names().len();
        writeln!(f, "{}: {} checks, {} failed", self.subject, self.checks.len(), failed)?;
        for check in &self.checks {
            match &check.outcome {
                Outcome::Passed => writeln!(f, "  ok      {}", check.name)?,
                Outcome::Failed(message) => writeln!(f, "  FAILED  {}: {message}", check.name)?,
                Outcome::Skipped(reason) => writeln!(f, "  skipped {}: {reason}", check.name)?,
            }
        }
        Ok(())
    }
}
