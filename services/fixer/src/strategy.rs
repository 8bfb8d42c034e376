//! The chain of strategies that draft a proposal: deterministic rules first (zero
//! tokens), then each configured LLM provider in order — the next one when a provider is
//! down or gives nothing usable. Every proposal, a rule's too, passes the same checks
//! before it leaves.

use std::time::{Duration, Instant};

use dbtops_proto::v1;
use dbtops_rules::{ParentColumns, RuleInput, SourceTable};
use dbtops_settings::{FixScope, Settings};

use crate::agent::{self, Context};
use crate::checks::{check_proposal, CheckPolicy};
use crate::llm::{LlmError, Provider};
use crate::usage::{self, Budget, Limits, Spend};

/// What a strategy sees: the incident and the attempts that failed validation.
pub struct ProposalRequest<'a> {
    /// The incident with its evidence.
    pub incident: &'a v1::FailureDetected,
    /// Earlier attempts, oldest first, each with dbt's error.
    pub history: &'a [v1::AttemptRecord],
}

/// What the chain concluded.
#[derive(Debug)]
pub enum Drafted {
    /// A proposal that passed the fixer's checks, and what the LLM calls cost.
    Proposal {
        /// The proposal.
        proposal: v1::FixProposal,
        /// LLM spend of this attempt (zero for a rule).
        spend: Spend,
        /// How long the rule stage (the rules, not the checks) took; `None` when rules
        /// are off.
        rule_stage: Option<Duration>,
    },
    /// No strategy has one.
    Nothing {
        /// For the incident record: `no_fix_found`, `guardrail` or `budget_exhausted`.
        reason: &'static str,
        /// Why, for a human.
        detail: String,
        /// LLM spend of this attempt.
        spend: Spend,
        /// How long the rule stage (the rules, not the checks) took; `None` when rules
        /// are off.
        rule_stage: Option<Duration>,
    },
    /// Every provider that might have one is unavailable right now: try again later.
    Unavailable {
        /// What each provider said.
        detail: String,
        /// The longest `Retry-After` a provider asked for.
        retry_after: Option<Duration>,
        /// LLM spend of this attempt.
        spend: Spend,
        /// How long the rule stage (the rules, not the checks) took; `None` when rules
        /// are off.
        rule_stage: Option<Duration>,
    },
}

/// The strategies, built once from the settings.
#[derive(Debug, Clone)]
pub struct Drafter {
    /// The configured providers, in fallback order.
    providers: Vec<Provider>,
    /// `fixer.rules_enabled`: try the rules first.
    rules_enabled: bool,
    /// Token budgets and the cost cap.
    limits: Limits,
    /// What the checks allow.
    policy: CheckPolicy,
    /// Record prompts and answers on spans.
    capture_content: bool,
    /// Every provider's API key: never sent in a prompt, never recorded.
    secrets: Vec<String>,
}

impl Drafter {
    /// Builds the providers named in the settings.
    pub fn new(settings: &Settings) -> Result<Self, LlmError> {
        let providers = settings
            .fixer
            .providers
            .iter()
            .map(Provider::new)
            .collect::<Result<Vec<_>, _>>()?;
        let secrets = providers
            .iter()
            .map(|provider| provider.api_key().to_owned())
            .filter(|key| !key.is_empty())
            .collect();
        Ok(Self {
            providers,
            rules_enabled: settings.fixer.rules_enabled,
            limits: Limits {
                tokens_per_call: settings.fixer.max_tokens_per_call,
                tokens_per_incident: settings.fixer.max_tokens_per_incident,
                cost_per_incident_usd: settings.fixer.max_cost_per_incident_usd,
            },
            policy: CheckPolicy {
                max_changed_share: settings.delivery.max_changed_share,
                lineage_enabled: settings.fixer.fix_scope == FixScope::Lineage,
            },
            capture_content: settings.fixer.capture_content,
            secrets,
        })
    }

    /// The providers, in fallback order.
    pub fn providers(&self) -> &[Provider] {
        &self.providers
    }

    /// Runs the chain: rules (unless `fixer.rules_enabled` is off), then each provider.
    pub async fn draft(&self, request: &ProposalRequest<'_>) -> Drafted {
        let mut reasons = Vec::new();
        let mut rule_stage = None;
        if self.rules_enabled {
            // The stage is the rules alone — reading the evidence and trying every rule of
            // the class. The checks that follow hold every proposal, an LLM's too, so
            // their cost is not the rules'.
            let started = Instant::now();
            let drafted = propose_by_rules(request);
            rule_stage = Some(started.elapsed());
            let checked = drafted.map(|proposal| {
                let verdict = check_proposal(
                    &proposal.model_path,
                    &proposal.fixed_sql,
                    request.incident,
                    request.history,
                    &self.policy,
                );
                (proposal, verdict)
            });
            match checked {
                Some((proposal, Ok(()))) => {
                    return Drafted::Proposal {
                        proposal,
                        spend: Spend::default(),
                        rule_stage,
                    };
                }
                Some((proposal, Err(refusal))) => {
                    tracing::warn!(message = "A rule's proposal was refused.", strategy = %proposal.strategy, %refusal);
                    reasons.push(format!("{} was refused: {refusal}", proposal.strategy));
                }
                None => {}
            }
        }
        if self.providers.is_empty() {
            let mut detail = if !self.rules_enabled {
                "rules are off (fixer.rules_enabled = false) and no LLM provider is configured"
                    .to_owned()
            } else if request.history.is_empty() {
                "no rule matched this failure and no LLM provider is configured".to_owned()
            } else {
                format!(
                    "no further proposal after {} failed attempt(s); no LLM provider is configured",
                    request.history.len()
                )
            };
            if !reasons.is_empty() {
                detail = format!("{detail}; {}", reasons.join("; "));
            }
            return Drafted::Nothing {
                reason: "no_fix_found",
                detail,
                spend: Spend::default(),
                rule_stage,
            };
        }
        let mut budget = Budget::new(self.limits, usage::spent_before(request.history));
        let context = Context {
            incident: request.incident,
            history: request.history,
            policy: &self.policy,
            capture_content: self.capture_content,
            secrets: &self.secrets,
        };
        let mut errors = Vec::new();
        for provider in &self.providers {
            match agent::ask(provider, &context, &mut budget).await {
                Ok(answered) => {
                    let spend = budget.this_attempt();
                    tracing::info!(
                        message = "Provider proposed a fix.",
                        provider = provider.name(),
                        templates = %answered.templates,
                        tokens = spend.usage.total(),
                        cost_usd = spend.cost_usd,
                    );
                    let error_class = request
                        .incident
                        .error
                        .as_ref()
                        .map(|error| error.class)
                        .unwrap_or_default();
                    let explanation = format!(
                        "{}\n\n{}",
                        answered.answer.explanation.trim(),
                        usage::trailer(&spend, &budget.total())
                    );
                    return Drafted::Proposal {
                        proposal: v1::FixProposal {
                            model_path: answered.answer.model_path,
                            fixed_sql: answered.answer.fixed_sql,
                            explanation,
                            error_class,
                            confidence: answered.answer.confidence,
                            strategy: format!("llm:{}/{}", provider.name(), provider.model()),
                            usage: Some(spend.to_proto()),
                            incident_usage: Some(budget.total().to_proto()),
                            upstream_edits: answered
                                .answer
                                .upstream_edits
                                .into_iter()
                                .map(|edit| v1::ModelEdit {
                                    path: edit.path,
                                    fixed_sql: edit.fixed_sql,
                                    explanation: edit.explanation,
                                })
                                .collect(),
                        },
                        spend,
                        rule_stage,
                    };
                }
                Err(error) => {
                    tracing::warn!(message = "Provider gave no proposal.", provider = provider.name(), %error, retry_helps = error.retry_helps());
                    errors.push(error);
                }
            }
        }
        conclude(reasons, errors, budget.this_attempt(), rule_stage)
    }
}

/// Every provider failed: wait when all were unavailable, otherwise end the attempt with
/// the most telling reason.
fn conclude(
    mut reasons: Vec<String>,
    errors: Vec<LlmError>,
    spend: Spend,
    rule_stage: Option<Duration>,
) -> Drafted {
    reasons.extend(errors.iter().map(ToString::to_string));
    let detail = reasons.join("; ");
    if errors.iter().all(LlmError::retry_helps) {
        let retry_after = errors
            .iter()
            .filter_map(|error| match error {
                LlmError::Unavailable { retry_after, .. } => *retry_after,
                _ => None,
            })
            .max();
        return Drafted::Unavailable {
            detail,
            retry_after,
            spend,
            rule_stage,
        };
    }
    let reason = if errors
        .iter()
        .any(|error| matches!(error, LlmError::Refused { .. }))
    {
        "guardrail"
    } else if errors
        .iter()
        .filter(|error| !error.retry_helps())
        .all(|error| matches!(error, LlmError::OverBudget { .. }))
    {
        "budget_exhausted"
    } else {
        "no_fix_found"
    };
    Drafted::Nothing {
        reason,
        detail,
        spend,
        rule_stage,
    }
}

fn propose_by_rules(request: &ProposalRequest<'_>) -> Option<v1::FixProposal> {
    let incident = request.incident;
    let model = incident.model.as_ref()?;
    let error = incident.error.as_ref()?;
    let evidence = incident.evidence.as_ref()?;
    let error_class = dbtops_rules::ErrorClass::from_label(error.class().label())?;

    let parent_columns: Vec<Vec<&str>> = evidence
        .parents
        .iter()
        .map(|parent| parent.columns.iter().map(String::as_str).collect())
        .collect();
    let parents: Vec<ParentColumns<'_>> = evidence
        .parents
        .iter()
        .zip(&parent_columns)
        .map(|(parent, columns)| ParentColumns {
            name: &parent.name,
            columns,
        })
        .collect();
    let node_names: Vec<&str> = evidence
        .project_node_names
        .iter()
        .map(String::as_str)
        .collect();
    let macro_names: Vec<&str> = evidence
        .project_macro_names
        .iter()
        .map(String::as_str)
        .collect();
    let macro_signatures: Vec<&str> = evidence
        .macro_signatures
        .iter()
        .map(String::as_str)
        .collect();
    let source_tables: Vec<SourceTable<'_>> = evidence
        .sources
        .iter()
        .map(|source| SourceTable {
            source_name: &source.source_name,
            table_name: &source.table_name,
        })
        .collect();
    let rejected: Vec<&str> = request
        .history
        .iter()
        .filter_map(|record| record.proposal.as_ref())
        .map(|proposal| proposal.fixed_sql.as_str())
        .collect();
    let input = RuleInput {
        error_class,
        error_message: &error.message,
        model_name: &model.name,
        model_sql: &evidence.model_sql,
        parents: &parents,
        project_node_names: &node_names,
        project_macro_names: &macro_names,
        macro_signatures: &macro_signatures,
        source_tables: &source_tables,
        adapter: &evidence.adapter,
        rejected_sql: &rejected,
    };
    let fix = dbtops_rules::propose_fix(&input)?;
    Some(v1::FixProposal {
        model_path: model.path.clone(),
        fixed_sql: fix.fixed_sql,
        explanation: fix.explanation,
        error_class: error.class,
        confidence: fix.confidence,
        strategy: format!("rule:{}", fix.rule),
        usage: None,
        incident_usage: None,
        upstream_edits: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unavailable(after: Option<u64>) -> LlmError {
        LlmError::Unavailable {
            provider: "p".into(),
            reason: "HTTP 503".into(),
            retry_after: after.map(Duration::from_secs),
        }
    }

    #[test]
    fn the_chain_waits_only_when_every_provider_was_unavailable() {
        match conclude(
            vec![],
            vec![unavailable(Some(5)), unavailable(Some(40))],
            Spend::default(),
            None,
        ) {
            Drafted::Unavailable { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(40)))
            }
            other => panic!("{other:?}"),
        }
        let refused = LlmError::Refused {
            provider: "q".into(),
            reason: "drop".into(),
        };
        assert!(matches!(
            conclude(
                vec![],
                vec![unavailable(None), refused],
                Spend::default(),
                None
            ),
            Drafted::Nothing {
                reason: "guardrail",
                ..
            }
        ));
        let over = LlmError::OverBudget {
            provider: "q".into(),
            reason: "tokens".into(),
        };
        assert!(matches!(
            conclude(vec![], vec![over], Spend::default(), None),
            Drafted::Nothing {
                reason: "budget_exhausted",
                ..
            }
        ));
        let unusable = LlmError::Unusable {
            provider: "q".into(),
            reason: "not json".into(),
        };
        match conclude(
            vec!["rule:x was refused".into()],
            vec![unusable],
            Spend::default(),
            None,
        ) {
            Drafted::Nothing { reason, detail, .. } => {
                assert_eq!(reason, "no_fix_found");
                assert!(
                    detail.contains("rule:x was refused") && detail.contains("not json"),
                    "{detail}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
