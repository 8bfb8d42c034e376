//! Picks the one existing name a misspelt name most plausibly meant — or refuses.
//!
//! A wrong fix costs a reviewer more than no fix, so the chooser only answers when one
//! candidate is *clearly* best: within a distance that scales with the length of the
//! names, and strictly better than every other candidate on (edit distance, token
//! overlap). Everything else is [`Choice::Ambiguous`], [`Choice::TooFar`], …, so the
//! caller can say why it did not fire.

use std::cmp::Ordering;

/// Names shorter than this are too short to judge a misspelling: `id` versus `ix` is one
/// edit, and so is `id` versus `d`.
pub const MIN_NAME_LEN: usize = 3;

/// How a candidate compares with the misspelt name.
#[derive(Debug, Clone, PartialEq)]
pub struct Match<'c> {
    /// The candidate, as it was given.
    pub name: &'c str,
    /// Optimal-string-alignment edit distance between the lower-cased names: one edit
    /// per inserted, deleted, substituted or transposed character.
    pub distance: usize,
    /// How many of the misspelt name's tokens (split on `_`, `.`, `-`, spaces) the
    /// candidate shares: 2 per identical token, 1 per abbreviation (`cust` → `customer`).
    pub token_overlap: usize,
    /// True when every token of the misspelt name abbreviates the candidate's token at
    /// the same position (`cust_id` → `customer_id`): an accepted match even beyond the
    /// edit-distance limit.
    pub abbreviates: bool,
}

/// The outcome of [`choose`].
#[derive(Debug, Clone, PartialEq)]
pub enum Choice<'c> {
    /// Exactly one candidate is best and close enough.
    Unique {
        /// The chosen candidate.
        best: Match<'c>,
        /// The next best acceptable candidate, if any: how clear the choice was.
        runner_up: Option<Match<'c>>,
    },
    /// Two or more acceptable candidates tie on distance and token overlap.
    Ambiguous(Vec<&'c str>),
    /// The misspelt name itself is a candidate: the problem is not its spelling.
    ExactExists,
    /// Candidates exist, but none is close enough.
    TooFar,
    /// The misspelt name is too short to judge, or there are no candidates.
    NoCandidates,
}

/// The largest edit distance accepted between two names, from the longer one's length:
/// 40 %, at least one. `ordr_date` → `order_date` (1 of 10) passes; `shipping_total` →
/// `amount` does not.
pub fn max_distance(len_a: usize, len_b: usize) -> usize {
    (len_a.max(len_b) * 2 / 5).max(1)
}

/// Compares `wrong` against one candidate.
pub fn compare<'c>(wrong: &str, candidate: &'c str) -> Match<'c> {
    let a = wrong.to_lowercase();
    let b = candidate.to_lowercase();
    let wrong_tokens = tokens(&a);
    let candidate_tokens = tokens(&b);
    let mut token_overlap = 0;
    for t in &wrong_tokens {
        if candidate_tokens.iter().any(|c| c == t) {
            token_overlap += 2;
        } else if candidate_tokens.iter().any(|c| abbreviation_of(t, c)) {
            token_overlap += 1;
        }
    }
    let abbreviates = wrong_tokens.len() == candidate_tokens.len()
        && wrong_tokens
            .iter()
            .zip(&candidate_tokens)
            .all(|(w, c)| w == c || abbreviation_of(w, c))
        && wrong_tokens != candidate_tokens;
    Match {
        name: candidate,
        distance: strsim::osa_distance(&a, &b),
        token_overlap,
        abbreviates,
    }
}

/// `short` is a plausible abbreviation of `long`: a proper prefix of at least two
/// characters (`cust` → `customer`, `qty` is not a prefix of `quantity` and so not one).
fn abbreviation_of(short: &str, long: &str) -> bool {
    short.len() >= 2 && short.len() < long.len() && long.starts_with(short)
}

/// `short` is `long` with letters left out, first letter kept: `cnt` → `count`, `qty` →
/// `quantity`, `nm` → `name`.
fn contraction_of(short: &str, long: &str) -> bool {
    let mut rest = long.chars();
    short.chars().count() >= 2
        && short.len() < long.len()
        && short.chars().next() == long.chars().next()
        && short.chars().all(|c| rest.any(|l| l == c))
}

fn tokens(name: &str) -> Vec<&str> {
    name.split(|c: char| c == '_' || c == '.' || c == '-' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .collect()
}

/// True when `m` is close enough to `wrong` to be proposed at all: an abbreviation, or
/// within [`max_distance`] *and* a slip inside words rather than a different word
/// (see [`words_compatible`]).
fn acceptable(wrong: &str, m: &Match<'_>) -> bool {
    m.abbreviates
        || (m.distance <= max_distance(wrong.chars().count(), m.name.chars().count())
            && words_compatible(wrong, m.name))
}

/// A typo changes characters inside words; it does not swap a whole word. When both
/// names have the same number of words (split on `_`, `.`, `-`, spaces), every pair of
/// differing words must itself be a near miss — within a third of the longer word's
/// length (at least one edit) — or an abbreviation (`cust` → `customer`) or a
/// contraction (`cnt` → `count`). `ordr_date` → `order_date` passes;
/// `customer_name` → `customer_id` and `order_status` → `order_date` do not, although
/// their character distance is within the limit for names that long. With different
/// word counts, only a slip of one character in the words themselves counts
/// (`orderdate` → `order_date`); a whole word more or less does not.
pub fn words_compatible(wrong: &str, candidate: &str) -> bool {
    let a = wrong.to_lowercase();
    let b = candidate.to_lowercase();
    let (wa, wb) = (tokens(&a), tokens(&b));
    if wa.len() != wb.len() {
        // A word added or dropped (`customer_name` → `customer_full_name`) is a rename,
        // not a typo; a separator added or dropped (`orderdate` → `order_date`) is.
        return strsim::osa_distance(&wa.concat(), &wb.concat()) <= 1;
    }
    if wa.len() < 2 {
        return true;
    }
    wa.iter().zip(&wb).all(|(x, y)| {
        x == y
            || abbreviation_of(x, y)
            || contraction_of(x, y)
            || strsim::osa_distance(x, y) <= (x.chars().count().max(y.chars().count()) / 3).max(1)
    })
}

/// Better candidates sort first: smaller distance, then larger token overlap.
fn rank(a: &Match<'_>, b: &Match<'_>) -> Ordering {
    a.distance
        .cmp(&b.distance)
        .then(b.token_overlap.cmp(&a.token_overlap))
}

/// Chooses the candidate `wrong` most plausibly meant.
///
/// Candidates are compared case-insensitively and de-duplicated the same way (the first
/// spelling wins), so the same column reported by two parents is one candidate.
pub fn choose<'c, I>(wrong: &str, candidates: I) -> Choice<'c>
where
    I: IntoIterator<Item = &'c str>,
{
    let mut seen: Vec<String> = Vec::new();
    let mut matches = Vec::new();
    for candidate in candidates {
        let lower = candidate.to_lowercase();
        if candidate.is_empty() || seen.contains(&lower) {
            continue;
        }
        if lower == wrong.to_lowercase() {
            return Choice::ExactExists;
        }
        seen.push(lower);
        matches.push(compare(wrong, candidate));
    }
    if matches.is_empty() || wrong.chars().count() < MIN_NAME_LEN {
        return Choice::NoCandidates;
    }
    let mut accepted: Vec<Match<'c>> = matches
        .into_iter()
        .filter(|m| acceptable(wrong, m))
        .collect();
    accepted.sort_by(rank);
    let mut accepted = accepted.into_iter();
    let Some(best) = accepted.next() else {
        return Choice::TooFar;
    };
    let runner_up = accepted.next();
    if let Some(second) = &runner_up {
        if rank(&best, second) == Ordering::Equal {
            let mut tied = vec![best.name, second.name];
            tied.extend(
                accepted
                    .take_while(|m| rank(&best, m) == Ordering::Equal)
                    .map(|m| m.name),
            );
            return Choice::Ambiguous(tied);
        }
    }
    Choice::Unique { best, runner_up }
}

/// A confidence in `[0.5, 0.95]` for a unique choice: high for a one-letter slip in a
/// long name, lower for a large edit, and lower again when the runner-up was as near
/// and only token overlap separated them. A heuristic for ranking and for reviewers,
/// not a probability.
pub fn confidence(wrong: &str, best: &Match<'_>, runner_up: Option<&Match<'_>>) -> f64 {
    let longest = wrong.chars().count().max(best.name.chars().count()).max(1);
    let similarity = 1.0 - (best.distance as f64 / longest as f64).min(1.0);
    let mut confidence = 0.5 + 0.45 * similarity;
    if runner_up.is_some_and(|r| r.distance == best.distance) {
        confidence -= 0.1;
    }
    confidence.clamp(0.5, 0.95)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unique(wrong: &str, candidates: &[&'static str]) -> Option<&'static str> {
        match choose(wrong, candidates.iter().copied()) {
            Choice::Unique { best, .. } => Some(best.name),
            _ => None,
        }
    }

    #[test]
    fn one_letter_slip() {
        assert_eq!(
            unique("ordr_date", &["order_id", "order_date", "amount"]),
            Some("order_date")
        );
    }

    #[test]
    fn transposition_is_one_edit() {
        assert_eq!(compare("ordre_date", "order_date").distance, 1);
    }

    #[test]
    fn abbreviation_beyond_the_distance_limit() {
        // `cust_id` → `customer_id` is four insertions, `order_id` five: the abbreviation
        // and the shared `id` token decide it.
        let m = compare("cust_id", "customer_id");
        assert!(m.abbreviates);
        assert_eq!(m.distance, 4);
        assert_eq!(
            unique("cust_id", &["customer_id", "order_id", "amount"]),
            Some("customer_id")
        );
    }

    #[test]
    fn token_overlap_breaks_a_distance_tie() {
        // Both are one edit away; `dat` abbreviates `date`, so `order_date` shares more.
        let date = compare("order_dat", "order_date");
        let cat = compare("order_dat", "order_cat");
        assert_eq!(date.distance, cat.distance);
        assert!(date.token_overlap > cat.token_overlap);
        assert_eq!(
            unique("order_dat", &["order_cat", "order_date"]),
            Some("order_date")
        );
    }

    #[test]
    fn equal_distance_and_overlap_is_a_tie() {
        assert_eq!(
            choose("ordr_date", ["order_date", "ordr_data"]),
            Choice::Ambiguous(vec!["order_date", "ordr_data"])
        );
    }

    #[test]
    fn equal_candidates_are_ambiguous() {
        assert_eq!(
            choose("code_c", ["code_a", "code_b", "id"]),
            Choice::Ambiguous(vec!["code_a", "code_b"])
        );
    }

    #[test]
    fn far_candidates_are_refused() {
        assert_eq!(
            choose("shipping_total", ["order_id", "amount"]),
            Choice::TooFar
        );
    }

    #[test]
    fn an_existing_name_is_not_a_misspelling() {
        assert_eq!(
            choose("Order_Date", ["order_id", "order_date"]),
            Choice::ExactExists
        );
    }

    #[test]
    fn short_names_and_empty_lists() {
        assert_eq!(choose("ix", ["id"]), Choice::NoCandidates);
        assert_eq!(choose("ordr", std::iter::empty()), Choice::NoCandidates);
    }

    #[test]
    fn duplicates_are_one_candidate() {
        assert_eq!(
            unique("ordr_date", &["order_date", "ORDER_DATE", "order_id"]),
            Some("order_date")
        );
    }

    #[test]
    fn a_different_word_is_not_a_typo() {
        // Four edits each, within the distance limit, but a whole word differs.
        assert_eq!(
            choose("customer_name", ["customer_id", "email"]),
            Choice::TooFar
        );
        assert_eq!(
            choose("order_status", ["order_date", "order_id"]),
            Choice::TooFar
        );
        assert!(words_compatible("ordr_date", "order_date"));
        assert!(words_compatible("customer_ix", "customer_id"));
        assert!(words_compatible("seat_cnt", "seat_count"));
        assert!(!words_compatible("customer_name", "customer_id"));
        // Different word counts: a separator slip is a typo, a whole word is not.
        assert!(words_compatible("orderdate", "order_date"));
        assert!(!words_compatible("customer_name", "customer_full_name"));
        assert!(!words_compatible("order_date", "order_date_utc"));
    }

    #[test]
    fn confidence_is_bounded_and_ordered() {
        let near = compare("ordr_date", "order_date");
        let far = compare("cust_id", "customer_id");
        let c_near = confidence("ordr_date", &near, None);
        let c_far = confidence("cust_id", &far, None);
        assert!(c_near > c_far);
        for c in [c_near, c_far] {
            assert!((0.5..=0.95).contains(&c));
        }
    }
}
