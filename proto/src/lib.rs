//! The dbt-ops wire contract.
//!
//! `v1` holds the prost types generated from `proto/dbtops/v1/*.proto`, and the tonic
//! client and server of the `dbtops.v1.Ingest` gRPC service (`v1::ingest_client`,
//! `v1::ingest_server`). Services convert
//! between these and their own domain types at their edges; nothing here has behaviour
//! beyond what prost generates, plus the names that tie a type to its subject and header.

/// Generated from `dbtops/v1/events.proto`.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/dbtops.v1.rs"));
}

/// A protobuf message that travels on the bus under a fixed, fully qualified type name
/// (sent in the `dbtops-type` header so a consumer can refuse what it does not expect).
pub trait WireMessage: prost::Message + Default {
    /// The fully qualified protobuf name, e.g. `dbtops.v1.FailureDetected`.
    const TYPE_NAME: &'static str;
}

macro_rules! wire_message {
    ($($ty:ident),* $(,)?) => {
        $(impl WireMessage for v1::$ty {
            const TYPE_NAME: &'static str = concat!("dbtops.v1.", stringify!($ty));
        })*
    };
}

wire_message!(
    RunSubmitted,
    RunProcessed,
    FailureDetected,
    FixProposed,
    CompileFailed,
    FixValidated,
    MergeRequestOpened,
    MergeRequestMerged,
    MergeRequestClosed,
    IncidentAbandoned,
    IncidentResolved,
    DeadLetter,
);

impl v1::ErrorClass {
    /// The short snake_case name used in logs, JSON output and metrics labels.
    pub fn label(self) -> &'static str {
        use v1::ErrorClass as C;
        match self {
            C::Unspecified => "unspecified",
            C::MissingColumn => "missing_column",
            C::AmbiguousColumn => "ambiguous_column",
            C::UnknownRelation => "unknown_relation",
            C::BadRef => "bad_ref",
            C::UnknownSource => "unknown_source",
            C::SqlSyntax => "sql_syntax",
            C::JinjaCompilation => "jinja_compilation",
            C::UndefinedMacro => "undefined_macro",
            C::YamlConfig => "yaml_config",
            C::TypeMismatch => "type_mismatch",
            C::RuntimeData => "runtime_data",
            C::DivisionByZero => "division_by_zero",
            C::MissingGroupBy => "missing_group_by",
            C::UnknownFunction => "unknown_function",
            C::DataTestFailure => "data_test_failure",
            C::Connection => "connection",
            C::Permission => "permission",
            C::Timeout => "timeout",
            C::Other => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn a_failure_survives_the_wire() {
        let sent = v1::FailureDetected {
            incident_id: "abc".into(),
            model: Some(v1::ModelRef {
                unique_id: "model.p.orders".into(),
                name: "orders".into(),
                path: "models/orders.sql".into(),
                resource_type: "model".into(),
            }),
            error: Some(v1::FailureError {
                class: v1::ErrorClass::MissingColumn as i32,
                ..Default::default()
            }),
            ..Default::default()
        };
        let received = v1::FailureDetected::decode(sent.encode_to_vec().as_slice()).unwrap();
        assert_eq!(received, sent);
        assert_eq!(
            received.error.unwrap().class(),
            v1::ErrorClass::MissingColumn
        );
        assert_eq!(
            <v1::FailureDetected as WireMessage>::TYPE_NAME,
            "dbtops.v1.FailureDetected"
        );
    }
}
