//! The chain of strategies that draft a proposal: deterministic rules first (zero
//! tokens), then each configured LLM provider in order. The first usable proposal wins.

use dbtops_guardrails::PathPolicy;
use dbtops_proto::v1;
use dbtops_rules::{ParentColumns, RuleInput, SourceTable};
use tracing::Instrument;

use crate::llm::{LlmError, Provider};

/// Largest proposal the fixer sends on, in bytes.
const MAX_SQL_BYTES: usize = 512 * 1024;

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
    /// A proposal that passed the fixer's own checks.
    Proposal(v1::FixProposal),
    /// No strategy has one; why, for the incident's record.
    Nothing(String),
    /// Every provider that might have one is unavailable right now: try again later.
    Unavailable(String),
}

/// Runs the chain: rules, then each provider.
pub async fn propose(request: &ProposalRequest<'_>, providers: &[Provider]) -> Drafted {
    if let Some(proposal) = propose_by_rules(request) {
        return Drafted::Proposal(proposal);
    }
    if providers.is_empty() {
        return Drafted::Nothing(if request.history.is_empty() {
            "no rule matched this failure and no LLM provider is configured".into()
        } else {
            format!(
                "no further proposal after {} failed attempt(s); no LLM provider is configured",
                request.history.len()
            )
        });
    }
    let mut reasons = Vec::new();
    let mut any_unusable = false;
    for provider in providers {
        match propose_by_llm(request, provider).await {
            Ok(proposal) => return Drafted::Proposal(proposal),
            Err(error) => {
                tracing::warn!(message = "Provider gave no proposal.", provider = provider.name(), %error);
                any_unusable |= matches!(error, LlmError::Unusable { .. });
                reasons.push(error.to_string());
            }
        }
    }
    if any_unusable {
        Drafted::Nothing(reasons.join("; "))
    } else {
        Drafted::Unavailable(reasons.join("; "))
    }
}

async fn propose_by_llm(
    request: &ProposalRequest<'_>,
    provider: &Provider,
) -> Result<v1::FixProposal, LlmError> {
    let incident = request.incident;
    let model = incident.model.clone().unwrap_or_default();
    let error = incident.error.clone().unwrap_or_default();
    let span = tracing::info_span!(
        "gen_ai.chat",
        otel.name = %format!("chat {}", provider.model()),
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = provider.name(),
        gen_ai.request.model = provider.model(),
        gen_ai.usage.input_tokens = tracing::field::Empty,
        gen_ai.usage.output_tokens = tracing::field::Empty,
    );
    let (answer, usage) = provider
        .propose(incident, request.history)
        .instrument(span.clone())
        .await?;
    span.record("gen_ai.usage.input_tokens", usage.input_tokens);
    span.record("gen_ai.usage.output_tokens", usage.output_tokens);
    let unusable = |reason: String| LlmError::Unusable {
        provider: provider.name().to_owned(),
        reason,
    };
    if answer.model_path != model.path {
        return Err(unusable(format!(
            "it proposed {:?}, not the incident's model {:?}",
            answer.model_path, model.path
        )));
    }
    let original = incident
        .evidence
        .as_ref()
        .map(|evidence| evidence.model_sql.as_str())
        .unwrap_or_default();
    let policy = PathPolicy {
        model_paths: incident
            .project
            .as_ref()
            .map(|project| project.model_paths.clone())
            .filter(|paths| !paths.is_empty())
            .unwrap_or_else(|| vec!["models".into()]),
        sensitive_globs: Vec::new(),
    };
    dbtops_guardrails::check_model_path(&answer.model_path, &model.path, &policy)
        .and_then(|()| dbtops_guardrails::check_sql_content(&answer.fixed_sql, MAX_SQL_BYTES))
        .and_then(|()| dbtops_guardrails::check_jinja_side_effects(original, &answer.fixed_sql))
        .map_err(|refusal| unusable(refusal.to_string()))?;
    let repeated = request.history.iter().any(|record| {
        record
            .proposal
            .as_ref()
            .is_some_and(|proposal| proposal.fixed_sql.trim() == answer.fixed_sql.trim())
    });
    if repeated {
        return Err(unusable(
            "it repeated a proposal that already failed validation".into(),
        ));
    }
    Ok(v1::FixProposal {
        model_path: model.path,
        fixed_sql: answer.fixed_sql,
        explanation: answer.explanation,
        error_class: error.class,
        confidence: answer.confidence,
        strategy: format!("llm:{}/{}", provider.name(), provider.model()),
    })
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
    })
}
