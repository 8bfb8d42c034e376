//! What LLM calls cost, and the budgets that bound it.
//!
//! A [`Budget`] is checked before every call with the call's worst case — the prompt's
//! estimated tokens plus `max_output_tokens` — so a call that could overshoot the
//! per-call or per-incident token budget or the cost cap is not made. The budgets are
//! never exceeded except by the error of the estimate (about 4 characters per token).
//!
//! Until the wire contract has a field for it, an incident's spend travels in the
//! proposal's explanation (the merge request shows it) as a trailer that later attempts
//! read back: `LLM usage: this attempt …; incident so far: N input + M output tokens, $C.`

use std::sync::OnceLock;

use dbtops_proto::v1;
use regex::Regex;

use crate::llm::Usage;

/// Tokens and dollars spent.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spend {
    /// Tokens.
    pub usage: Usage,
    /// LLM calls made.
    pub calls: u32,
    /// US dollars.
    pub cost_usd: f64,
}

impl Spend {
    /// Adds one call.
    pub fn add_call(&mut self, usage: Usage, cost_usd: f64) {
        self.usage.input_tokens += usage.input_tokens;
        self.usage.output_tokens += usage.output_tokens;
        self.calls += 1;
        self.cost_usd += cost_usd;
    }

    /// The sum of two spends.
    pub fn plus(&self, other: &Spend) -> Spend {
        Spend {
            usage: Usage {
                input_tokens: self.usage.input_tokens + other.usage.input_tokens,
                output_tokens: self.usage.output_tokens + other.usage.output_tokens,
            },
            calls: self.calls + other.calls,
            cost_usd: self.cost_usd + other.cost_usd,
        }
    }

    /// As it travels on the wire.
    pub fn to_proto(&self) -> v1::LlmUsage {
        v1::LlmUsage {
            input_tokens: self.usage.input_tokens,
            output_tokens: self.usage.output_tokens,
            calls: self.calls,
            cost_usd: self.cost_usd,
        }
    }

    /// `1200 input + 300 output tokens in 2 call(s), $0.001200`.
    pub fn describe(&self) -> String {
        format!(
            "{} input + {} output tokens in {} call(s), ${:.6}",
            self.usage.input_tokens, self.usage.output_tokens, self.calls, self.cost_usd
        )
    }
}

/// The limits from the settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// `fixer.max_tokens_per_call`.
    pub tokens_per_call: u64,
    /// `fixer.max_tokens_per_incident`.
    pub tokens_per_incident: u64,
    /// `fixer.max_cost_per_incident_usd`.
    pub cost_per_incident_usd: f64,
}

/// What one incident may still spend.
#[derive(Debug, Clone)]
pub struct Budget {
    /// The limits.
    limits: Limits,
    /// Spent by earlier attempts (read from their proposals).
    before: Spend,
    /// Spent by this attempt so far.
    now: Spend,
}

/// The worst case of one call, checked before it is made.
#[derive(Debug, Clone, Copy)]
pub struct CallEstimate {
    /// Estimated prompt tokens.
    pub input_tokens: u64,
    /// The call's `max_output_tokens`.
    pub max_output_tokens: u64,
    /// Dollars per million prompt tokens.
    pub input_price_per_mtok: f64,
    /// Dollars per million answer tokens.
    pub output_price_per_mtok: f64,
}

impl Budget {
    /// A budget for one attempt, after `before` was spent by earlier ones.
    pub fn new(limits: Limits, before: Spend) -> Self {
        Self {
            limits,
            before,
            now: Spend::default(),
        }
    }

    /// Refuses a call whose worst case exceeds a limit; says which.
    pub fn admit(&self, call: &CallEstimate) -> Result<(), String> {
        let worst_tokens = call.input_tokens + call.max_output_tokens;
        if worst_tokens > self.limits.tokens_per_call {
            return Err(format!(
                "the call could use {worst_tokens} tokens (~{} prompt + {} answer), over fixer.max_tokens_per_call = {}",
                call.input_tokens, call.max_output_tokens, self.limits.tokens_per_call
            ));
        }
        let total = self.total();
        if total.usage.total() + worst_tokens > self.limits.tokens_per_incident {
            return Err(format!(
                "the incident has used {} tokens; another call could use {worst_tokens}, over fixer.max_tokens_per_incident = {}",
                total.usage.total(),
                self.limits.tokens_per_incident
            ));
        }
        let worst_cost = (call.input_tokens as f64 * call.input_price_per_mtok
            + call.max_output_tokens as f64 * call.output_price_per_mtok)
            / 1_000_000.0;
        if total.cost_usd + worst_cost > self.limits.cost_per_incident_usd {
            return Err(format!(
                "the incident has cost ${:.6}; another call could cost ${worst_cost:.6}, over fixer.max_cost_per_incident_usd = {}",
                total.cost_usd, self.limits.cost_per_incident_usd
            ));
        }
        Ok(())
    }

    /// Records a call that was made.
    pub fn record(&mut self, usage: Usage, cost_usd: f64) {
        self.now.add_call(usage, cost_usd);
    }

    /// Spent by this attempt.
    pub fn this_attempt(&self) -> Spend {
        self.now
    }

    /// Spent by the incident, this attempt included.
    pub fn total(&self) -> Spend {
        self.before.plus(&self.now)
    }
}

/// The prompt's tokens, estimated from the request body's length (about 4 characters
/// per token; JSON punctuation makes it an overestimate, which is the safe side).
pub fn estimate_tokens(text_len: usize) -> u64 {
    text_len.div_ceil(4) as u64
}

/// The trailer appended to an LLM proposal's explanation.
pub fn trailer(this_attempt: &Spend, incident: &Spend) -> String {
    format!(
        "LLM usage: this attempt {}; incident so far: {} input + {} output tokens, ${:.6}.",
        this_attempt.describe(),
        incident.usage.input_tokens,
        incident.usage.output_tokens,
        incident.cost_usd
    )
}

/// What earlier attempts spent: the newest trailer among the history's proposals (each
/// trailer holds the running total).
pub fn spent_before(history: &[v1::AttemptRecord]) -> Spend {
    static PATTERN: OnceLock<Option<Regex>> = OnceLock::new();
    let Some(pattern) = PATTERN.get_or_init(|| {
        Regex::new(r"incident so far: (\d+) input \+ (\d+) output tokens, \$(\d+(?:\.\d+)?)\.").ok()
    }) else {
        return Spend::default();
    };
    history
        .iter()
        .rev()
        .filter_map(|record| record.proposal.as_ref())
        .find_map(|proposal| {
            let captures = pattern.captures_iter(&proposal.explanation).last()?;
            Some(Spend {
                usage: Usage {
                    input_tokens: captures.get(1)?.as_str().parse().ok()?,
                    output_tokens: captures.get(2)?.as_str().parse().ok()?,
                },
                calls: 0,
                cost_usd: captures.get(3)?.as_str().parse().ok()?,
            })
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            tokens_per_call: 5_000,
            tokens_per_incident: 10_000,
            cost_per_incident_usd: 0.01,
        }
    }

    fn call(input_tokens: u64) -> CallEstimate {
        CallEstimate {
            input_tokens,
            max_output_tokens: 1_000,
            input_price_per_mtok: 1.0,
            output_price_per_mtok: 2.0,
        }
    }

    #[test]
    fn calls_that_could_overshoot_a_budget_are_refused() {
        let mut budget = Budget::new(limits(), Spend::default());
        assert!(budget.admit(&call(3_000)).is_ok());
        assert!(budget
            .admit(&call(4_500))
            .unwrap_err()
            .contains("max_tokens_per_call"));
        budget.record(
            Usage {
                input_tokens: 3_000,
                output_tokens: 500,
            },
            0.004,
        );
        budget.record(
            Usage {
                input_tokens: 3_000,
                output_tokens: 500,
            },
            0.004,
        );
        assert!(budget
            .admit(&call(3_000))
            .unwrap_err()
            .contains("max_tokens_per_incident"));
        let cheap = Budget::new(
            Limits {
                cost_per_incident_usd: 0.004,
                ..limits()
            },
            Spend::default(),
        );
        assert!(cheap
            .admit(&call(3_000))
            .unwrap_err()
            .contains("max_cost_per_incident_usd"));
        assert_eq!(estimate_tokens(10), 3);
    }

    #[test]
    fn the_trailer_carries_the_running_total_to_later_attempts() {
        let mut budget = Budget::new(limits(), Spend::default());
        budget.record(
            Usage {
                input_tokens: 900,
                output_tokens: 120,
            },
            0.00054,
        );
        let explanation = format!(
            "Fixed the typo.\n\n{}",
            trailer(&budget.this_attempt(), &budget.total())
        );
        assert!(
            explanation
                .contains("this attempt 900 input + 120 output tokens in 1 call(s), $0.000540"),
            "{explanation}"
        );
        let history = [
            v1::AttemptRecord {
                attempt: 1,
                proposal: Some(v1::FixProposal {
                    explanation,
                    ..Default::default()
                }),
                ..Default::default()
            },
            v1::AttemptRecord {
                attempt: 2,
                proposal: Some(v1::FixProposal {
                    explanation: "by a rule".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ];
        let before = spent_before(&history);
        assert_eq!(
            before.usage,
            Usage {
                input_tokens: 900,
                output_tokens: 120
            }
        );
        assert!((before.cost_usd - 0.00054).abs() < 1e-9);
        let next = Budget::new(limits(), before);
        assert_eq!(next.total().usage.total(), 1_020);
        assert_eq!(spent_before(&[]), Spend::default());
    }
}
