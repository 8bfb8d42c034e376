//! The SQL types the type rules reason about, read from two places: the names a
//! warehouse prints in its errors (`INT32`, `INTEGER_LITERAL`, `timestamp without time
//! zone`) and the names a model writes in a cast (`int`, `int8`, `double precision`).
//!
//! Both are tables of data with the adapters each row was seen on, as in
//! [`crate::column_errors`]: the same word can mean different types — `INT8` in a DuckDB
//! conversion error is its physical 8-bit type (TINYINT), while `int8` in PostgreSQL (and
//! in a DuckDB cast) is a 64-bit BIGINT — so the input's adapter picks the rows tried
//! first.

/// A type, as far as a cast needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SqlType {
    /// Strings: VARCHAR, text, character varying.
    Text,
    /// 8-bit integer (DuckDB's TINYINT).
    TinyInt,
    /// 16-bit integer.
    SmallInt,
    /// 32-bit integer.
    Integer,
    /// 64-bit integer.
    BigInt,
    /// 128-bit integer (DuckDB's HUGEINT).
    HugeInt,
    /// Fixed-point, with its precision and scale when the warehouse printed them.
    Decimal(Option<(u8, u8)>),
    /// 32-bit float.
    Real,
    /// 64-bit float.
    Double,
    /// A calendar date.
    Date,
    /// A timestamp without time zone.
    Timestamp,
    /// A timestamp with time zone.
    TimestampTz,
    /// true / false.
    Boolean,
}

impl SqlType {
    /// True for the integer types.
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            SqlType::TinyInt
                | SqlType::SmallInt
                | SqlType::Integer
                | SqlType::BigInt
                | SqlType::HugeInt
        )
    }

    /// True for every number type.
    pub fn is_number(self) -> bool {
        self.is_integer() || matches!(self, SqlType::Decimal(_) | SqlType::Real | SqlType::Double)
    }

    /// True for a date or a timestamp.
    pub fn is_temporal(self) -> bool {
        matches!(
            self,
            SqlType::Date | SqlType::Timestamp | SqlType::TimestampTz
        )
    }

    /// The same type for comparing a cast's target with an error's: a decimal's
    /// precision is left out (DuckDB prints the literal's, a model writes its own).
    pub fn same_as(self, other: SqlType) -> bool {
        match (self, other) {
            (SqlType::Decimal(_), SqlType::Decimal(_)) => true,
            (a, b) => a == b,
        }
    }

    /// How a cast to this type is written for `adapter`; `None` where the rules do not
    /// know the spelling.
    pub fn spelling(self, adapter: &str) -> Option<String> {
        let family = adapter_family(adapter);
        let text = match (self, family) {
            (SqlType::Text, Family::Postgres) => "text",
            (SqlType::Text, Family::BigQuery) => "string",
            (SqlType::Text, _) => "varchar",
            (SqlType::TinyInt, Family::DuckDb) => "tinyint",
            (SqlType::TinyInt, _) => return None,
            (SqlType::SmallInt, Family::BigQuery) => "int64",
            (SqlType::SmallInt, _) => "smallint",
            (SqlType::Integer, Family::BigQuery) => "int64",
            (SqlType::Integer, _) => "integer",
            (SqlType::BigInt, Family::BigQuery) => "int64",
            (SqlType::BigInt, _) => "bigint",
            (SqlType::HugeInt, Family::DuckDb) => "hugeint",
            (SqlType::HugeInt, _) => return None,
            (SqlType::Decimal(Some((p, s))), Family::BigQuery) => {
                return Some(format!("numeric({p}, {s})"))
            }
            (SqlType::Decimal(Some((p, s))), _) => return Some(format!("decimal({p}, {s})")),
            (SqlType::Decimal(None), Family::DuckDb | Family::Other) => "decimal",
            (SqlType::Decimal(None), _) => "numeric",
            (SqlType::Real, Family::Postgres) => "real",
            (SqlType::Real, Family::BigQuery) => "float64",
            (SqlType::Real, _) => "float",
            (SqlType::Double, Family::Postgres) => "double precision",
            (SqlType::Double, Family::BigQuery) => "float64",
            (SqlType::Double, _) => "double",
            (SqlType::Date, _) => "date",
            (SqlType::Timestamp, _) => "timestamp",
            (SqlType::TimestampTz, Family::BigQuery) => "timestamp",
            (SqlType::TimestampTz, Family::Snowflake) => "timestamp_tz",
            (SqlType::TimestampTz, _) => "timestamptz",
            (SqlType::Boolean, Family::BigQuery) => "bool",
            (SqlType::Boolean, _) => "boolean",
        };
        Some(text.to_owned())
    }
}

/// The warehouses whose type names differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// DuckDB and MotherDuck.
    DuckDb,
    /// PostgreSQL and Redshift.
    Postgres,
    /// Snowflake.
    Snowflake,
    /// BigQuery.
    BigQuery,
    /// Anything else.
    Other,
}

/// Which family an adapter's SQL belongs to.
pub(crate) fn adapter_family(adapter: &str) -> Family {
    match adapter.to_ascii_lowercase().as_str() {
        "duckdb" | "motherduck" => Family::DuckDb,
        "postgres" | "postgresql" | "redshift" => Family::Postgres,
        "snowflake" => Family::Snowflake,
        "bigquery" => Family::BigQuery,
        _ => Family::Other,
    }
}

/// A type as a warehouse printed it in an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorType {
    /// The type.
    pub ty: SqlType,
    /// DuckDB's `INTEGER_LITERAL` / `STRING_LITERAL`: the operand is a literal.
    pub literal: bool,
}

/// One way a type name is printed or written.
#[derive(Debug, Clone, Copy)]
struct TypeRow {
    /// The adapters that use these names this way, tried first for them; empty: any.
    adapters: &'static [&'static str],
    /// The names, lower case, words separated by one space.
    names: &'static [&'static str],
    /// The type they mean.
    ty: SqlType,
    /// A literal's type (DuckDB's binder names them).
    literal: bool,
}

const DUCKDB: &[&str] = &["duckdb", "motherduck"];
const POSTGRES: &[&str] = &["postgres", "postgresql", "redshift"];
const BIGQUERY: &[&str] = &["bigquery"];
const SNOWFLAKE: &[&str] = &["snowflake"];
const ANY: &[&str] = &[];

const fn row(
    adapters: &'static [&'static str],
    names: &'static [&'static str],
    ty: SqlType,
) -> TypeRow {
    TypeRow {
        adapters,
        names,
        ty,
        literal: false,
    }
}

const fn literal(names: &'static [&'static str], ty: SqlType) -> TypeRow {
    TypeRow {
        adapters: DUCKDB,
        names,
        ty,
        literal: true,
    }
}

/// Type names as the warehouses print them in errors. DuckDB's binder prints logical
/// names (`INTEGER`, `VARCHAR`, `INTEGER_LITERAL`, `DECIMAL(3,1)`); its conversion errors
/// print physical ones (`INT32`, `INT64`, `INT8` for TINYINT). PostgreSQL prints its
/// catalogue names (`integer`, `character varying`, `timestamp without time zone`). All
/// rows were seen in real dbt runs (see `tests/real_type_errors.rs`) except the
/// BigQuery `int64`/`float64`/`string` names, from its documentation. A decimal with
/// its precision (`DECIMAL(3,1)`) is read apart from the table.
const ERROR_TYPE_ROWS: &[TypeRow] = &[
    literal(&["integer_literal"], SqlType::Integer),
    literal(&["string_literal"], SqlType::Text),
    row(DUCKDB, &["int8", "int1", "tinyint"], SqlType::TinyInt),
    row(DUCKDB, &["int16", "int2", "smallint"], SqlType::SmallInt),
    row(
        DUCKDB,
        &["int32", "int4", "integer", "int"],
        SqlType::Integer,
    ),
    row(DUCKDB, &["int64", "bigint"], SqlType::BigInt),
    row(DUCKDB, &["int128", "hugeint"], SqlType::HugeInt),
    row(DUCKDB, &["float", "real", "float4"], SqlType::Real),
    row(DUCKDB, &["double", "float8"], SqlType::Double),
    row(DUCKDB, &["varchar", "string", "text"], SqlType::Text),
    row(DUCKDB, &["bool", "boolean"], SqlType::Boolean),
    row(
        DUCKDB,
        &["timestamp with time zone", "timestamptz"],
        SqlType::TimestampTz,
    ),
    row(
        DUCKDB,
        &[
            "timestamp",
            "timestamp_s",
            "timestamp_ms",
            "timestamp_ns",
            "datetime",
        ],
        SqlType::Timestamp,
    ),
    row(POSTGRES, &["integer", "int4", "int"], SqlType::Integer),
    row(POSTGRES, &["bigint", "int8"], SqlType::BigInt),
    row(POSTGRES, &["smallint", "int2"], SqlType::SmallInt),
    row(POSTGRES, &["real", "float4"], SqlType::Real),
    row(POSTGRES, &["double precision", "float8"], SqlType::Double),
    row(
        POSTGRES,
        &[
            "text",
            "character varying",
            "varchar",
            "character",
            "char",
            "bpchar",
            "unknown",
        ],
        SqlType::Text,
    ),
    row(POSTGRES, &["boolean", "bool"], SqlType::Boolean),
    row(
        POSTGRES,
        &["timestamp with time zone", "timestamptz"],
        SqlType::TimestampTz,
    ),
    row(
        POSTGRES,
        &["timestamp without time zone", "timestamp"],
        SqlType::Timestamp,
    ),
    row(BIGQUERY, &["int64"], SqlType::BigInt),
    row(BIGQUERY, &["float64"], SqlType::Double),
    row(BIGQUERY, &["string"], SqlType::Text),
    row(ANY, &["decimal", "numeric"], SqlType::Decimal(None)),
    row(ANY, &["date"], SqlType::Date),
];

/// Type names as a model writes them in `cast(x as …)` or `x::…`, per dialect.
const WRITTEN_TYPE_ROWS: &[TypeRow] = &[
    row(DUCKDB, &["tinyint", "int1"], SqlType::TinyInt),
    row(
        DUCKDB,
        &["smallint", "int2", "int16", "short"],
        SqlType::SmallInt,
    ),
    row(
        DUCKDB,
        &["integer", "int", "int4", "int32", "signed"],
        SqlType::Integer,
    ),
    row(
        DUCKDB,
        &["bigint", "int8", "int64", "long"],
        SqlType::BigInt,
    ),
    row(DUCKDB, &["hugeint", "int128"], SqlType::HugeInt),
    row(DUCKDB, &["float", "float4", "real"], SqlType::Real),
    row(DUCKDB, &["double", "float8"], SqlType::Double),
    row(
        DUCKDB,
        &["varchar", "text", "string", "char", "bpchar"],
        SqlType::Text,
    ),
    row(DUCKDB, &["boolean", "bool", "logical"], SqlType::Boolean),
    row(DUCKDB, &["timestamp", "datetime"], SqlType::Timestamp),
    row(
        DUCKDB,
        &["timestamptz", "timestamp with time zone"],
        SqlType::TimestampTz,
    ),
    row(POSTGRES, &["smallint", "int2"], SqlType::SmallInt),
    row(POSTGRES, &["integer", "int", "int4"], SqlType::Integer),
    row(POSTGRES, &["bigint", "int8"], SqlType::BigInt),
    row(POSTGRES, &["real", "float4"], SqlType::Real),
    row(
        POSTGRES,
        &["double precision", "float8", "float"],
        SqlType::Double,
    ),
    row(
        POSTGRES,
        &["text", "varchar", "character varying", "char", "character"],
        SqlType::Text,
    ),
    row(POSTGRES, &["boolean", "bool"], SqlType::Boolean),
    row(
        POSTGRES,
        &["timestamp", "timestamp without time zone"],
        SqlType::Timestamp,
    ),
    row(
        POSTGRES,
        &["timestamptz", "timestamp with time zone"],
        SqlType::TimestampTz,
    ),
    row(
        BIGQUERY,
        &["int64", "integer", "int", "bigint", "smallint"],
        SqlType::BigInt,
    ),
    row(BIGQUERY, &["float64"], SqlType::Double),
    row(BIGQUERY, &["string"], SqlType::Text),
    row(BIGQUERY, &["bool", "boolean"], SqlType::Boolean),
    row(
        SNOWFLAKE,
        &["number", "int", "integer", "bigint", "smallint"],
        SqlType::Decimal(None),
    ),
    row(
        SNOWFLAKE,
        &["float", "double", "real", "double precision"],
        SqlType::Double,
    ),
    row(SNOWFLAKE, &["varchar", "text", "string"], SqlType::Text),
    row(ANY, &["decimal", "numeric"], SqlType::Decimal(None)),
    row(ANY, &["date"], SqlType::Date),
];

/// `decimal(18, 2)` / `NUMERIC(3,1)`: the precision and scale.
fn decimal_parameters(name: &str) -> Option<(u8, u8)> {
    let open = name.find('(')?;
    let base = name[..open].trim();
    if base != "decimal" && base != "numeric" {
        return None;
    }
    let inner = name[open + 1..].strip_suffix(')')?;
    let (p, s) = inner.split_once(',')?;
    Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
}

/// The first row naming `name`: the adapter's own rows first, then rows for any
/// adapter, then the other adapters' rows (the text is the authority).
fn lookup(rows: &[TypeRow], adapter: &str, name: &str) -> Option<ErrorType> {
    let name = name
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase();
    if let Some(parameters) = decimal_parameters(&name) {
        return Some(ErrorType {
            ty: SqlType::Decimal(Some(parameters)),
            literal: false,
        });
    }
    let adapter = adapter.to_ascii_lowercase();
    let own = |row: &&TypeRow| row.adapters.contains(&adapter.as_str());
    let any = |row: &&TypeRow| row.adapters.is_empty();
    let other = |row: &&TypeRow| !row.adapters.is_empty() && !own(row);
    rows.iter()
        .filter(own)
        .chain(rows.iter().filter(any))
        .chain(rows.iter().filter(other))
        .find(|row| row.names.contains(&name.as_str()))
        .map(|row| ErrorType {
            ty: row.ty,
            literal: row.literal,
        })
}

/// A type name from an error text (`INT32`, `INTEGER_LITERAL`, `character varying`).
pub fn error_type(adapter: &str, name: &str) -> Option<ErrorType> {
    lookup(ERROR_TYPE_ROWS, adapter, name)
}

/// A type name as written in a cast in the model (`int`, `double precision`,
/// `decimal(18, 2)`).
pub fn written_type(adapter: &str, name: &str) -> Option<SqlType> {
    lookup(WRITTEN_TYPE_ROWS, adapter, name).map(|t| t.ty)
}

/// Every type name a model may write in a cast for `adapter` (its own rows and the rows
/// of any adapter), lower case: the candidates for a misspelt type name when the
/// warehouse suggests none.
pub fn written_type_names(adapter: &str) -> Vec<&'static str> {
    let adapter = adapter.to_ascii_lowercase();
    WRITTEN_TYPE_ROWS
        .iter()
        .filter(|row| row.adapters.is_empty() || row.adapters.contains(&adapter.as_str()))
        .flat_map(|row| row.names.iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lower_case_single_spaced() {
        for row in ERROR_TYPE_ROWS.iter().chain(WRITTEN_TYPE_ROWS) {
            for name in row.names {
                assert_eq!(
                    *name,
                    name.split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                        .to_ascii_lowercase()
                );
            }
        }
    }

    #[test]
    fn the_same_word_is_read_per_adapter() {
        // DuckDB's conversion errors print physical types: INT8 is 8 bits.
        assert_eq!(
            error_type("duckdb", "INT8").map(|t| t.ty),
            Some(SqlType::TinyInt)
        );
        assert_eq!(
            error_type("postgres", "int8").map(|t| t.ty),
            Some(SqlType::BigInt)
        );
        // In a cast, DuckDB's int8 is BIGINT, as in PostgreSQL.
        assert_eq!(written_type("duckdb", "int8"), Some(SqlType::BigInt));
        assert_eq!(written_type("duckdb", "INT"), Some(SqlType::Integer));
        assert_eq!(
            error_type("duckdb", "INT32").map(|t| t.ty),
            Some(SqlType::Integer)
        );
        assert_eq!(
            error_type("duckdb", "INTEGER_LITERAL"),
            Some(ErrorType {
                ty: SqlType::Integer,
                literal: true
            })
        );
        assert_eq!(
            error_type("postgres", "timestamp without time zone").map(|t| t.ty),
            Some(SqlType::Timestamp)
        );
        assert_eq!(
            error_type("duckdb", "DECIMAL(3,1)").map(|t| t.ty),
            Some(SqlType::Decimal(Some((3, 1))))
        );
        assert_eq!(
            written_type("postgres", "double   precision"),
            Some(SqlType::Double)
        );
        assert_eq!(written_type("duckdb", "varchar(20)"), None);
        assert_eq!(
            written_type("duckdb", "decimal(18, 2)"),
            Some(SqlType::Decimal(Some((18, 2))))
        );
        assert_eq!(error_type("duckdb", "GEOMETRY"), None);
    }

    #[test]
    fn spellings_follow_the_dialect() {
        assert_eq!(
            SqlType::Double.spelling("duckdb").as_deref(),
            Some("double")
        );
        assert_eq!(
            SqlType::Double.spelling("postgres").as_deref(),
            Some("double precision")
        );
        assert_eq!(SqlType::Text.spelling("postgres").as_deref(), Some("text"));
        assert_eq!(SqlType::HugeInt.spelling("postgres"), None);
        assert_eq!(
            SqlType::Decimal(Some((18, 2)))
                .spelling("duckdb")
                .as_deref(),
            Some("decimal(18, 2)")
        );
    }
}
