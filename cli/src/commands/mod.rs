//! One module per subcommand.

pub mod detect;
pub mod submit;
pub mod up;
pub mod watch;
