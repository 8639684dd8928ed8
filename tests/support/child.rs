//! Child processes of the real-process tests: the test binary runs one of
//! its own ignored tests (the child half) in a new process.
//!
//! The child's name is built from `module_path!()`, so it stays right when
//! a test file moves; a name that matches no test would run nothing (and
//! exit with success), which is why every parent also checks that its
//! child did its part.

use std::process::Command;

/// The harness's name of the test `name` of the module `module`
/// (`module_path!()`): the module path without the test binary's name.
pub fn test_name(module: &str, name: &str) -> String {
    match module.split_once("::") {
        Some((_binary, path)) => format!("{path}::{name}"),
        None => name.to_owned(),
    }
}

/// This test binary, set to run exactly the ignored test `name` of the
/// module `module` (`module_path!()`), its output not captured.
pub fn command(module: &str, name: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("test binary path"));
    command.args([
        "--exact",
        &test_name(module, name),
        "--ignored",
        "--nocapture",
    ]);
    command
}
