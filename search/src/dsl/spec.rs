//! The query forms as they arrive in a request (serde types; unknown fields refused).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum QuerySpec {
    MatchAll {},
    Match(MatchSpec),
    Term(TermSpec),
    Phrase(PhraseSpec),
    Range(RangeSpec),
    Bool(BoolSpec),
    QueryString(QueryStringSpec),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    pub field: String,
    pub query: serde_json::Value,
    #[serde(default)]
    pub operator: Operator,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    #[default]
    Or,
    And,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TermSpec {
    pub field: String,
    pub value: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhraseSpec {
    pub field: String,
    pub query: String,
    #[serde(default)]
    pub slop: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeSpec {
    pub field: String,
    #[serde(default)]
    pub gt: Option<serde_json::Value>,
    #[serde(default)]
    pub gte: Option<serde_json::Value>,
    #[serde(default)]
    pub lt: Option<serde_json::Value>,
    #[serde(default)]
    pub lte: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoolSpec {
    #[serde(default)]
    pub must: Vec<QuerySpec>,
    #[serde(default)]
    pub should: Vec<QuerySpec>,
    #[serde(default)]
    pub must_not: Vec<QuerySpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum QueryStringSpec {
    Text(String),
    Full(QueryStringFull),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryStringFull {
    pub query: String,
    /// Fields searched by terms without a field; all text fields when absent.
    #[serde(default)]
    pub default_fields: Option<Vec<String>>,
    /// Terms without `+`/`-` must all match (default: any may).
    #[serde(default)]
    pub conjunction: bool,
}
