//! One module per `splitnas` command.

pub mod arch;
pub mod bench;
pub mod compare;
pub mod data;
pub mod extract;
pub mod info;
pub mod plugins;
pub mod run;
pub mod scaffold;
pub mod train;
pub mod tree;

/// An error and its causes on one line, each said once: a cause whose text the error above it
/// already contains (`#[error("{path}: {source}")]` wrappers) is not repeated.
pub fn error_chain(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text = format!("{text}: {cause}");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_already_in_the_message_are_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let error = anyhow::Error::new(io).context("runs/a/config.toml: No such file or directory").context("cannot resume");
        assert_eq!(error_chain(&error), "cannot resume: runs/a/config.toml: No such file or directory");
    }
}
