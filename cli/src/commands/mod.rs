//! One module per subcommand.

pub mod bench;
pub mod dashboard;
pub mod detect;
pub mod eval;
pub mod report;
pub mod scratch;
pub mod status;
pub mod submit;
pub mod up;
pub mod watch;
