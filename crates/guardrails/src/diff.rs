//! Line diffs: a Myers edit script, the unified diff shown in merge requests, and the
//! share of a file a change touches.
//!
//! Lines keep their terminator (`"a\n"` and `"a"` are different lines), so a change to the
//! final newline is a change like any other and the diff says `\ No newline at end of file`.

use crate::GuardrailError;

/// Lines of context around each change, as `diff -u` and `git diff` print by default.
const CONTEXT: usize = 3;

/// Beyond this many inserted plus deleted lines (after trimming the common prefix and
/// suffix), the middle of the file is treated as replaced wholesale. The Myers trace grows
/// with the square of this number, so the cap bounds memory at a few megabytes; the diff
/// stays correct, only less minimal.
const MAX_EDIT_DISTANCE: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Equal,
    Delete,
    Insert,
}

/// One step of an edit script, with the cursor positions in both files before the step.
#[derive(Debug, Clone, Copy)]
struct Edit {
    op: Op,
    old: usize,
    new: usize,
}

fn split_lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

/// The edit script turning `a` into `b`, deletions before insertions within a change.
fn edit_script(a: &[&str], b: &[&str]) -> Vec<Edit> {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (a_mid, b_mid) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);

    let mut ops = vec![Op::Equal; prefix];
    match myers(a_mid, b_mid) {
        Some(middle) => ops.extend(middle),
        None => {
            ops.extend(std::iter::repeat_n(Op::Delete, a_mid.len()));
            ops.extend(std::iter::repeat_n(Op::Insert, b_mid.len()));
        }
    }
    ops.extend(std::iter::repeat_n(Op::Equal, suffix));
    deletions_first(&mut ops);

    let (mut old, mut new) = (0, 0);
    ops.into_iter()
        .map(|op| {
            let edit = Edit { op, old, new };
            match op {
                Op::Equal => {
                    old += 1;
                    new += 1;
                }
                Op::Delete => old += 1,
                Op::Insert => new += 1,
            }
            edit
        })
        .collect()
}

/// Within each run of changes, moves deletions before insertions: the same edit, printed
/// the way reviewers expect (`-old` lines, then `+new` lines).
fn deletions_first(ops: &mut [Op]) {
    let mut start = 0;
    while start < ops.len() {
        if ops[start] == Op::Equal {
            start += 1;
            continue;
        }
        let end = ops[start..]
            .iter()
            .position(|op| *op == Op::Equal)
            .map_or(ops.len(), |offset| start + offset);
        ops[start..end].sort_by_key(|op| *op != Op::Delete);
        start = end;
    }
}

/// Myers' O((N+M)·D) greedy algorithm ("An O(ND) Difference Algorithm and Its
/// Variations", 1986). Returns `None` when the edit distance exceeds
/// [`MAX_EDIT_DISTANCE`].
fn myers(a: &[&str], b: &[&str]) -> Option<Vec<Op>> {
    let (n, m) = (a.len() as isize, b.len() as isize);
    let limit = (a.len() + b.len()).min(MAX_EDIT_DISTANCE) as isize;
    let offset = limit + 1;
    // v[offset + k] is the furthest x reached on diagonal k = x - y.
    let mut v = vec![0isize; (2 * limit + 3) as usize];
    // trace[d] keeps v[-d..=d] after round d, for walking back from the end.
    let mut trace: Vec<Vec<isize>> = Vec::new();
    for d in 0..=limit {
        let mut k = -d;
        while k <= d {
            let down =
                k == -d || (k != d && v[(offset + k - 1) as usize] < v[(offset + k + 1) as usize]);
            let mut x = if down {
                v[(offset + k + 1) as usize]
            } else {
                v[(offset + k - 1) as usize] + 1
            };
            let mut y = x - k;
            while x < n && y < m && a[x as usize] == b[y as usize] {
                x += 1;
                y += 1;
            }
            v[(offset + k) as usize] = x;
            if x >= n && y >= m {
                return Some(backtrack(&trace, n, m, d));
            }
            k += 2;
        }
        trace.push(v[(offset - d) as usize..=(offset + d) as usize].to_vec());
    }
    None
}

fn backtrack(trace: &[Vec<isize>], n: isize, m: isize, distance: isize) -> Vec<Op> {
    let mut ops = Vec::new();
    let (mut x, mut y) = (n, m);
    for d in (1..=distance).rev() {
        let previous = &trace[(d - 1) as usize];
        let at = |k: isize| previous[(k + d - 1) as usize];
        let k = x - y;
        let previous_k = if k == -d || (k != d && at(k - 1) < at(k + 1)) {
            k + 1
        } else {
            k - 1
        };
        let previous_x = at(previous_k);
        let previous_y = previous_x - previous_k;
        while x > previous_x && y > previous_y {
            ops.push(Op::Equal);
            x -= 1;
            y -= 1;
        }
        ops.push(if x == previous_x {
            Op::Insert
        } else {
            Op::Delete
        });
        x = previous_x;
        y = previous_y;
    }
    while x > 0 && y > 0 {
        ops.push(Op::Equal);
        x -= 1;
        y -= 1;
    }
    ops.reverse();
    ops
}

/// A unified diff of `original` → `fixed` with 3 lines of context and `--- a/<path>` /
/// `+++ b/<path>` headers, as `git apply` and `patch -p1` accept it.
///
/// Returns an empty string when the two are identical. `path` is printed as given; pass a
/// path that has passed [`crate::check_model_path`].
pub fn unified_diff(path: &str, original: &str, fixed: &str) -> String {
    let (a, b) = (split_lines(original), split_lines(fixed));
    let edits = edit_script(&a, &b);
    let changes: Vec<usize> = edits
        .iter()
        .enumerate()
        .filter(|(_, edit)| edit.op != Op::Equal)
        .map(|(index, _)| index)
        .collect();
    let Some((&first, rest)) = changes.split_first() else {
        return String::new();
    };

    // Changes separated by at most 2 × CONTEXT unchanged lines share a hunk, since their
    // contexts would otherwise overlap.
    let mut groups = Vec::new();
    let (mut group_start, mut previous) = (first, first);
    for &change in rest {
        if change - previous - 1 > 2 * CONTEXT {
            groups.push((group_start, previous));
            group_start = change;
        }
        previous = change;
    }
    groups.push((group_start, previous));

    let mut out = format!("--- a/{path}\n+++ b/{path}\n");
    for (first_change, last_change) in groups {
        let start = first_change.saturating_sub(CONTEXT);
        let end = (last_change + 1 + CONTEXT).min(edits.len());
        let hunk = &edits[start..end];
        let old_count = hunk.iter().filter(|e| e.op != Op::Insert).count();
        let new_count = hunk.iter().filter(|e| e.op != Op::Delete).count();
        out.push_str(&format!(
            "@@ -{} +{} @@\n",
            hunk_range(hunk[0].old, old_count),
            hunk_range(hunk[0].new, new_count)
        ));
        for edit in hunk {
            let (marker, line) = match edit.op {
                Op::Equal => (' ', a[edit.old]),
                Op::Delete => ('-', a[edit.old]),
                Op::Insert => ('+', b[edit.new]),
            };
            out.push(marker);
            out.push_str(line);
            if !line.ends_with('\n') {
                out.push_str("\n\\ No newline at end of file\n");
            }
        }
    }
    out
}

/// `start,count` as diff prints it: 1-based, `,count` omitted for one line, and for an
/// empty range the number of the line *before* it (0 at the top of the file).
fn hunk_range(start: usize, count: usize) -> String {
    match count {
        0 => format!("{start},0"),
        1 => format!("{}", start + 1),
        _ => format!("{},{count}", start + 1),
    }
}

/// The share of the original file's lines that the change touches, from 0.0 to 1.0.
///
/// A replaced line counts once: the share is `max(deleted, inserted) / original lines`,
/// capped at 1.0, so inserting lines counts too (appending 100 lines to a 10-line model is
/// a rewrite). An empty original gives 0.0 when nothing is added and 1.0 otherwise.
pub fn changed_line_share(original: &str, fixed: &str) -> f64 {
    let (a, b) = (split_lines(original), split_lines(fixed));
    let edits = edit_script(&a, &b);
    let deleted = edits.iter().filter(|e| e.op == Op::Delete).count();
    let inserted = edits.iter().filter(|e| e.op == Op::Insert).count();
    if a.is_empty() {
        return if inserted == 0 { 0.0 } else { 1.0 };
    }
    (deleted.max(inserted) as f64 / a.len() as f64).min(1.0)
}

/// Refuses a change whose [`changed_line_share`] exceeds `max_share` (0.0–1.0).
pub fn check_change_size(
    original: &str,
    fixed: &str,
    max_share: f64,
) -> Result<(), GuardrailError> {
    if !(0.0..=1.0).contains(&max_share) {
        return Err(GuardrailError::InvalidPolicy(format!(
            "the maximum changed-line share must be between 0.0 and 1.0, got {max_share}"
        )));
    }
    let share = changed_line_share(original, fixed);
    if share > max_share {
        return Err(GuardrailError::ChangeTooLarge { share, max_share });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies an edit script, to check it really turns `a` into `b`.
    fn apply(a: &[&str], b: &[&str], edits: &[Edit]) -> String {
        let mut out = String::new();
        for edit in edits {
            match edit.op {
                Op::Equal => {
                    assert_eq!(a[edit.old], b[edit.new]);
                    out.push_str(a[edit.old]);
                }
                Op::Delete => {}
                Op::Insert => out.push_str(b[edit.new]),
            }
        }
        out
    }

    /// A tiny deterministic generator, so the tests need no `rand`.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, bound: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % bound
        }
    }

    fn random_text(rng: &mut Lcg, lines: u64) -> String {
        (0..rng.next(lines + 1))
            .map(|_| format!("line {}\n", rng.next(6)))
            .collect()
    }

    /// The length of a longest common subsequence, by dynamic programming.
    fn lcs(a: &[&str], b: &[&str]) -> usize {
        let mut table = vec![vec![0usize; b.len() + 1]; a.len() + 1];
        for i in (0..a.len()).rev() {
            for j in (0..b.len()).rev() {
                table[i][j] = if a[i] == b[j] {
                    table[i + 1][j + 1] + 1
                } else {
                    table[i + 1][j].max(table[i][j + 1])
                };
            }
        }
        table[0][0]
    }

    #[test]
    fn edit_scripts_are_correct_and_minimal() {
        let mut rng = Lcg(7);
        for _ in 0..500 {
            let (x, y) = (random_text(&mut rng, 20), random_text(&mut rng, 20));
            let (a, b) = (split_lines(&x), split_lines(&y));
            let edits = edit_script(&a, &b);
            assert_eq!(apply(&a, &b, &edits), y);
            let equal = edits.iter().filter(|e| e.op == Op::Equal).count();
            assert_eq!(equal, lcs(&a, &b), "{x:?} -> {y:?}");
        }
    }

    #[test]
    fn a_huge_edit_distance_falls_back_to_a_correct_replacement() {
        let x: String = (0..1500).map(|i| format!("a{i}\n")).collect();
        let y: String = (0..1500).map(|i| format!("b{i}\n")).collect();
        let (a, b) = (split_lines(&x), split_lines(&y));
        let edits = edit_script(&a, &b);
        assert_eq!(apply(&a, &b, &edits), y);
        assert_eq!(changed_line_share(&x, &y), 1.0);
    }

    #[test]
    fn identical_texts_have_an_empty_diff() {
        assert_eq!(unified_diff("models/x.sql", "a\nb\n", "a\nb\n"), "");
        assert_eq!(changed_line_share("a\nb\n", "a\nb\n"), 0.0);
    }

    #[test]
    fn one_changed_line_in_the_middle() {
        let original = "1\n2\n3\n4\n5\n6\n7\n8\n9\n";
        let fixed = "1\n2\n3\n4\nfive\n6\n7\n8\n9\n";
        assert_eq!(
            unified_diff("models/x.sql", original, fixed),
            "--- a/models/x.sql\n+++ b/models/x.sql\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n"
        );
    }

    #[test]
    fn distant_changes_get_separate_hunks() {
        let original: String = (1..=20).map(|i| format!("{i}\n")).collect();
        let fixed: String = (1..=20)
            .map(|i| match i {
                3 => "three\n".to_owned(),
                18 => "eighteen\n".to_owned(),
                _ => format!("{i}\n"),
            })
            .collect();
        let diff = unified_diff("m.sql", &original, &fixed);
        assert_eq!(diff.matches("@@ -").count(), 2, "{diff}");
        assert!(diff.contains("@@ -1,6 +1,6 @@\n"), "{diff}");
        assert!(diff.contains("@@ -15,6 +15,6 @@\n"), "{diff}");
    }

    #[test]
    fn missing_final_newline_is_marked() {
        let diff = unified_diff("m.sql", "select 1", "select 2");
        assert_eq!(
            diff,
            "--- a/m.sql\n+++ b/m.sql\n@@ -1 +1 @@\n-select 1\n\\ No newline at end of file\n+select 2\n\\ No newline at end of file\n"
        );
    }

    #[test]
    fn pure_insertion_at_the_top_uses_line_zero() {
        let diff = unified_diff("m.sql", "", "a\n");
        assert_eq!(diff, "--- a/m.sql\n+++ b/m.sql\n@@ -0,0 +1 @@\n+a\n");
    }

    #[test]
    fn share_counts_a_replaced_line_once() {
        let original: String = (1..=10).map(|i| format!("{i}\n")).collect();
        let fixed = original.replace("5\n", "five\n");
        assert!((changed_line_share(&original, &fixed) - 0.1).abs() < 1e-9);
        let appended = format!("{original}11\n12\n13\n");
        assert!((changed_line_share(&original, &appended) - 0.3).abs() < 1e-9);
        assert_eq!(changed_line_share("", ""), 0.0);
        assert_eq!(changed_line_share("", "x\n"), 1.0);
        assert_eq!(changed_line_share("a\n", ""), 1.0);
    }

    #[test]
    fn change_size_cap() {
        let original: String = (1..=10).map(|i| format!("{i}\n")).collect();
        let fixed = original.replace("5\n", "five\n");
        assert!(check_change_size(&original, &fixed, 0.1).is_ok());
        assert!(matches!(
            check_change_size(&original, &fixed, 0.05),
            Err(GuardrailError::ChangeTooLarge { .. })
        ));
        assert!(matches!(
            check_change_size(&original, &fixed, f64::NAN),
            Err(GuardrailError::InvalidPolicy(_))
        ));
        assert!(matches!(
            check_change_size(&original, &fixed, 1.5),
            Err(GuardrailError::InvalidPolicy(_))
        ));
    }
}
