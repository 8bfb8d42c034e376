//! What several CLI test binaries share.

use std::process::Child;
use std::time::{Duration, Instant};

/// Stops a `dbt-ops up` (or any child that cleans up after itself) as an operator would:
/// SIGTERM, a bounded wait, then SIGKILL. A SIGKILL alone would leave the private
/// nats-server `up` started running after the test.
pub fn stop_gracefully(child: &mut Child, grace: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let pid = child.id().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}
