//! A log far bigger than what the reader may hold goes through in one pass with bounded
//! memory. Alone in its test binary, so the process's peak RSS is this test's.

use std::io::Read;
use std::path::Path;

/// Repeats real dbt logs (the fixtures' text logs, appended as a real `dbt.log` is) until
/// `total` bytes, without ever holding more than one copy.
struct RepeatedLog {
    block: Vec<u8>,
    at: usize,
    left: u64,
}

impl Read for RepeatedLog {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let n = buf
            .len()
            .min(self.block.len() - self.at)
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        buf[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at = (self.at + n) % self.block.len();
        self.left -= n as u64;
        Ok(n)
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_log_many_times_the_buffer_streams_in_bounded_memory() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut block = Vec::new();
    for case in [
        "misspelt_column_staging",
        "misspelt_column_mart",
        "misspelt_ref",
    ] {
        block.extend_from_slice(&std::fs::read(dir.join(case).join("dbt.log")).unwrap());
    }
    let last = std::fs::read(dir.join("misspelt_ref/dbt.log")).unwrap();
    let expected = dbtops_artifacts::scan_log_bytes(&last);
    let total: u64 = 160 * 1024 * 1024;
    // Whole blocks, so the log ends with misspelt_ref's failed parse.
    let total = total - total % block.len() as u64;
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = peak_rss_kib();
    let scan = dbtops_artifacts::scan_log(RepeatedLog {
        block: block.clone(),
        at: 0,
        left: total,
    })
    .unwrap();
    let grew_mib = (peak_rss_kib().saturating_sub(before)) / 1024;
    assert_eq!(scan.bytes, total);
    assert_eq!(scan.last_invocation_id, expected.last_invocation_id);
    assert_eq!(scan.last_outcome, "failed");
    assert!(scan.invocations > 1_000, "{}", scan.invocations);
    // A 4 MiB read buffer and one invocation's state; never the 160 MiB.
    assert!(grew_mib < 24, "peak RSS grew by {grew_mib} MiB");
}
