//! The error classes a rule is keyed on.
//!
//! The detector classifies every failure into one of these labels; the labels are the
//! shared vocabulary (detector, fixer, proto, logs), so this enum only mirrors them and
//! converts to and from the snake_case text. Keeping our own enum, rather than the proto
//! one, keeps this crate free of the wire contract.

use std::fmt;
use std::str::FromStr;

/// The class of a dbt failure, as labelled by the detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ErrorClass {
    /// A column the model selects does not exist upstream.
    MissingColumn,
    /// A column name matches more than one relation in scope.
    AmbiguousColumn,
    /// A table or view the SQL reads does not exist in the warehouse.
    UnknownRelation,
    /// A `ref()` names a node the project does not have.
    BadRef,
    /// A `source()` names a source table that is not declared.
    UnknownSource,
    /// The warehouse could not parse the SQL.
    SqlSyntax,
    /// Jinja failed to render the model.
    JinjaCompilation,
    /// The model calls a macro that does not exist.
    UndefinedMacro,
    /// The model's YAML entry or project configuration is invalid.
    YamlConfig,
    /// An expression mixes incompatible types or a cast fails at bind time.
    TypeMismatch,
    /// The SQL is valid but the data made it fail (bad cast of a value, …).
    RuntimeData,
    /// An integer division by zero at run time.
    DivisionByZero,
    /// A non-aggregated column is missing from `GROUP BY`.
    MissingGroupBy,
    /// The SQL calls a function the warehouse does not know.
    UnknownFunction,
    /// A data test returned failing rows.
    DataTestFailure,
    /// dbt could not reach the warehouse.
    Connection,
    /// The warehouse refused an operation for lack of privileges.
    Permission,
    /// The query or connection timed out.
    Timeout,
    /// Anything the detector could not place; the default, so that an unknown label
    /// never makes a rule fire.
    #[default]
    Other,
}

/// A label that is not one of the known error classes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown error class label `{0}`")]
pub struct UnknownErrorClass(pub String);

impl ErrorClass {
    /// Every class, in the order of the shared label list.
    pub const ALL: [ErrorClass; 19] = [
        ErrorClass::MissingColumn,
        ErrorClass::AmbiguousColumn,
        ErrorClass::UnknownRelation,
        ErrorClass::BadRef,
        ErrorClass::UnknownSource,
        ErrorClass::SqlSyntax,
        ErrorClass::JinjaCompilation,
        ErrorClass::UndefinedMacro,
        ErrorClass::YamlConfig,
        ErrorClass::TypeMismatch,
        ErrorClass::RuntimeData,
        ErrorClass::DivisionByZero,
        ErrorClass::MissingGroupBy,
        ErrorClass::UnknownFunction,
        ErrorClass::DataTestFailure,
        ErrorClass::Connection,
        ErrorClass::Permission,
        ErrorClass::Timeout,
        ErrorClass::Other,
    ];

    /// The snake_case label the detector uses for this class.
    pub fn label(self) -> &'static str {
        match self {
            ErrorClass::MissingColumn => "missing_column",
            ErrorClass::AmbiguousColumn => "ambiguous_column",
            ErrorClass::UnknownRelation => "unknown_relation",
            ErrorClass::BadRef => "bad_ref",
            ErrorClass::UnknownSource => "unknown_source",
            ErrorClass::SqlSyntax => "sql_syntax",
            ErrorClass::JinjaCompilation => "jinja_compilation",
            ErrorClass::UndefinedMacro => "undefined_macro",
            ErrorClass::YamlConfig => "yaml_config",
            ErrorClass::TypeMismatch => "type_mismatch",
            ErrorClass::RuntimeData => "runtime_data",
            ErrorClass::DivisionByZero => "division_by_zero",
            ErrorClass::MissingGroupBy => "missing_group_by",
            ErrorClass::UnknownFunction => "unknown_function",
            ErrorClass::DataTestFailure => "data_test_failure",
            ErrorClass::Connection => "connection",
            ErrorClass::Permission => "permission",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Other => "other",
        }
    }

    /// The class for a snake_case label; `None` for a label this crate does not know.
    /// Exact match only: the labels are a machine vocabulary, not user input.
    pub fn from_label(label: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|class| class.label() == label)
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl FromStr for ErrorClass {
    type Err = UnknownErrorClass;

    fn from_str(label: &str) -> Result<Self, Self::Err> {
        Self::from_label(label).ok_or_else(|| UnknownErrorClass(label.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_round_trips() {
        for class in ErrorClass::ALL {
            assert_eq!(ErrorClass::from_label(class.label()), Some(class));
            assert_eq!(class.label().parse::<ErrorClass>(), Ok(class));
            assert_eq!(class.to_string(), class.label());
        }
    }

    #[test]
    fn labels_are_unique_and_snake_case() {
        let mut labels: Vec<&str> = ErrorClass::ALL.iter().map(|c| c.label()).collect();
        assert!(labels
            .iter()
            .all(|l| l.chars().all(|c| c.is_ascii_lowercase() || c == '_')));
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), ErrorClass::ALL.len());
    }

    #[test]
    fn unknown_labels_are_refused() {
        assert_eq!(ErrorClass::from_label("Missing_Column"), None);
        assert_eq!(ErrorClass::from_label(""), None);
        assert_eq!(
            "nope".parse::<ErrorClass>(),
            Err(UnknownErrorClass("nope".to_owned()))
        );
    }
}
