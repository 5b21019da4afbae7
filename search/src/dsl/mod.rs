//! The query forms and how each becomes a tantivy query against an index's mapping.
//!
//! ```json
//! {"match":  {"field": "title", "query": "rust async", "operator": "or"}}
//! {"term":   {"field": "tag", "value": "db"}}
//! {"phrase": {"field": "title", "query": "query planner", "slop": 0}}
//! {"range":  {"field": "year", "gte": 2020, "lt": 2024}}       (i64, f64 and date fields)
//! {"bool":   {"must": [...], "should": [...], "must_not": [...]}}
//! {"query_string": "title:rust +year:>2020"}   or   {"query_string": {"query": "...",
//!                                                     "default_fields": ["title"]}}
//! {"match_all": {}}
//! ```
//!
//! Text is analysed with the field's analyzer, so `match` and `phrase` find what indexing
//! stored; `term` takes the value as is. In the dynamic default mapping a field name is a
//! path in the document (`author.name`); range queries there are refused (they need a mapped
//! numeric or date field). Errors name where in the request they are, and for
//! `query_string` the byte position in the string.

use std::ops::Bound;

use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, Occur, PhraseQuery, Query, QueryParser, RangeQuery,
    TermQuery,
};
use tantivy::query_grammar::{UserInputAst, UserInputLeaf};
use tantivy::schema::{Field, IndexRecordOption, Schema};
use tantivy::tokenizer::TokenizerManager;
use tantivy::{DateTime, Term};
use tessera_index::fulltext::{self, DOC_FIELD, ID_FIELD};
use tessera_index::mapping::{FieldMapping, FieldType, Mapping};

use crate::SearchError;

mod spec;
pub use spec::*;

/// What queries are built against: an index's schema, mapping and analyzers.
pub struct Target {
    schema: Schema,
    mapping: Mapping,
    tokenizers: TokenizerManager,
}

/// A field of the request resolved against the mapping.
enum Resolved<'a> {
    Mapped(Field, &'a FieldType),
    /// A path in the dynamic mapping's document field.
    Dynamic(Field, String),
}

impl Target {
    /// For a mapping, without an index (the coordinator validates with it).
    pub fn for_mapping(mapping: &Mapping) -> Self {
        Self {
            schema: fulltext::schema(mapping),
            mapping: mapping.clone(),
            tokenizers: TokenizerManager::default(),
        }
    }

    /// For an open index (field ids and analyzers are the index's own).
    pub fn for_index(index: &tantivy::Index, mapping: &Mapping) -> Self {
        Self {
            schema: index.schema(),
            mapping: mapping.clone(),
            tokenizers: index.tokenizers().clone(),
        }
    }

    /// Builds `spec`; `path` names it in errors (`query` at the top).
    pub fn build(&self, spec: &QuerySpec, path: &str) -> Result<Box<dyn Query>, SearchError> {
        match spec {
            QuerySpec::MatchAll {} => Ok(Box::new(AllQuery)),
            QuerySpec::Match(m) => self.build_match(m, &format!("{path}.match")),
            QuerySpec::Term(t) => {
                let path = format!("{path}.term");
                let resolved = self.resolve(&t.field, &format!("{path}.field"))?;
                let term = self.value_term(&resolved, &t.value, &format!("{path}.value"))?;
                Ok(Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs)))
            }
            QuerySpec::Phrase(p) => self.build_phrase(p, &format!("{path}.phrase")),
            QuerySpec::Range(r) => self.build_range(r, &format!("{path}.range")),
            QuerySpec::Bool(b) => self.build_bool(b, &format!("{path}.bool")),
            QuerySpec::QueryString(q) => {
                self.build_query_string(q, &format!("{path}.query_string"))
            }
        }
    }

    fn field_names(&self) -> String {
        let names: Vec<&str> = self
            .mapping
            .fields
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        if names.is_empty() {
            "none mapped".into()
        } else {
            names.join(", ")
        }
    }

    fn resolve(&self, name: &str, path: &str) -> Result<Resolved<'_>, SearchError> {
        const KEYWORD: FieldType = FieldType::Keyword;
        if name == ID_FIELD {
            let field = self
                .schema
                .get_field(ID_FIELD)
                .map_err(SearchError::engine)?;
            return Ok(Resolved::Mapped(field, &KEYWORD));
        }
        if self.mapping.dynamic {
            if name.is_empty() {
                return Err(SearchError::bad(path, "a field name is required"));
            }
            // tantivy ends a JSON path at a NUL byte and splits it at U+0001: a field name
            // with either would address something else (or trip an assertion inside it).
            if name.chars().any(|c| c == '\0' || c == '\u{1}') {
                return Err(SearchError::bad(
                    path,
                    "a field name may not contain the control characters U+0000 or U+0001",
                ));
            }
            let field = self
                .schema
                .get_field(DOC_FIELD)
                .map_err(SearchError::engine)?;
            return Ok(Resolved::Dynamic(field, name.to_string()));
        }
        let mapped: Option<&FieldMapping> = self.mapping.fields.iter().find(|f| f.name == name);
        match mapped {
            None => Err(SearchError::bad(
                path,
                format!("unknown field `{name}` (fields: {})", self.field_names()),
            )),
            Some(f) if !f.indexed => Err(SearchError::bad(
                path,
                format!("field `{name}` is not indexed (`indexed: false` in the mapping)"),
            )),
            Some(f) => {
                let field = self.schema.get_field(name).map_err(SearchError::engine)?;
                Ok(Resolved::Mapped(field, &f.field_type))
            }
        }
    }

    /// The analysed tokens of `text` (with positions) for a field.
    fn tokens(&self, resolved: &Resolved<'_>, text: &str) -> Vec<(usize, String)> {
        let tokenizer = match resolved {
            Resolved::Mapped(_, FieldType::Text { tokenizer }) => tokenizer.as_str(),
            Resolved::Mapped(..) => return vec![(0, text.to_string())],
            Resolved::Dynamic(..) => "default",
        };
        let Some(mut analyzer) = self.tokenizers.get(tokenizer) else {
            return vec![(0, text.to_string())];
        };
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            let token = stream.token();
            out.push((token.position, token.text.clone()));
        }
        out
    }

    fn text_term(&self, resolved: &Resolved<'_>, token: &str) -> Term {
        match resolved {
            Resolved::Mapped(field, _) => Term::from_field_text(*field, token),
            Resolved::Dynamic(field, json_path) => {
                let mut term = Term::from_field_json_path(*field, json_path, false);
                term.append_type_and_str(token);
                term
            }
        }
    }

    /// The term for an exact value of the field's type.
    fn value_term(
        &self,
        resolved: &Resolved<'_>,
        value: &serde_json::Value,
        path: &str,
    ) -> Result<Term, SearchError> {
        use serde_json::Value;
        let wrong =
            |wanted: &str| SearchError::bad(path, format!("expected {wanted}, found `{value}`"));
        match resolved {
            Resolved::Mapped(field, field_type) => match field_type {
                FieldType::Text { .. } | FieldType::Keyword => match value {
                    Value::String(s) => Ok(Term::from_field_text(*field, s)),
                    Value::Number(n) => Ok(Term::from_field_text(*field, &n.to_string())),
                    _ => Err(wrong("a string")),
                },
                FieldType::I64 => as_i64(value)
                    .map(|v| Term::from_field_i64(*field, v))
                    .ok_or_else(|| wrong("an integer")),
                FieldType::F64 => as_f64(value)
                    .map(|v| Term::from_field_f64(*field, v))
                    .ok_or_else(|| wrong("a number")),
                FieldType::Bool => as_bool(value)
                    .map(|v| Term::from_field_bool(*field, v))
                    .ok_or_else(|| wrong("true or false")),
                FieldType::Date => as_date(value)
                    .map(|v| Term::from_field_date_for_search(*field, v))
                    .ok_or_else(|| wrong("an RFC 3339 date, e.g. 2024-05-01T00:00:00Z")),
            },
            Resolved::Dynamic(field, json_path) => {
                let mut term = Term::from_field_json_path(*field, json_path, false);
                match value {
                    Value::String(s) => term.append_type_and_str(s),
                    Value::Bool(b) => term.append_type_and_fast_value(*b),
                    Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                        (Some(i), _, _) => term.append_type_and_fast_value(i),
                        (None, Some(u), _) => term.append_type_and_fast_value(u),
                        (None, None, Some(f)) => term.append_type_and_fast_value(f),
                        _ => return Err(wrong("a number")),
                    },
                    _ => return Err(wrong("a string, number or boolean")),
                }
                Ok(term)
            }
        }
    }

    fn build_match(&self, m: &MatchSpec, path: &str) -> Result<Box<dyn Query>, SearchError> {
        let resolved = self.resolve(&m.field, &format!("{path}.field"))?;
        let is_text = matches!(
            resolved,
            Resolved::Mapped(_, FieldType::Text { .. }) | Resolved::Dynamic(..)
        );
        let text = match (&m.query, is_text) {
            (serde_json::Value::String(s), true) => s.clone(),
            // Not analysed: one exact value.
            (value, _) => {
                let term = self.value_term(&resolved, value, &format!("{path}.query"))?;
                return Ok(Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs)));
            }
        };
        let occur = match m.operator {
            Operator::Or => Occur::Should,
            Operator::And => Occur::Must,
        };
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = self
            .tokens(&resolved, &text)
            .into_iter()
            .map(|(_, token)| {
                let q: Box<dyn Query> = Box::new(TermQuery::new(
                    self.text_term(&resolved, &token),
                    IndexRecordOption::WithFreqs,
                ));
                (occur, q)
            })
            .collect();
        Ok(match clauses.len() {
            0 => Box::new(EmptyQuery),
            1 => clauses.remove(0).1,
            _ => Box::new(BooleanQuery::new(clauses)),
        })
    }

    fn build_phrase(&self, p: &PhraseSpec, path: &str) -> Result<Box<dyn Query>, SearchError> {
        let resolved = self.resolve(&p.field, &format!("{path}.field"))?;
        if !matches!(
            resolved,
            Resolved::Mapped(_, FieldType::Text { .. }) | Resolved::Dynamic(..)
        ) {
            return Err(SearchError::bad(
                format!("{path}.field"),
                format!("phrase queries need a text field; `{}` is not one", p.field),
            ));
        }
        let mut terms: Vec<(usize, Term)> = self
            .tokens(&resolved, &p.query)
            .into_iter()
            .map(|(position, token)| (position, self.text_term(&resolved, &token)))
            .collect();
        Ok(match terms.len() {
            0 => Box::new(EmptyQuery),
            1 => Box::new(TermQuery::new(
                terms.remove(0).1,
                IndexRecordOption::WithFreqs,
            )),
            _ => {
                let mut phrase = PhraseQuery::new_with_offset(terms);
                phrase.set_slop(p.slop);
                Box::new(phrase)
            }
        })
    }

    fn build_range(&self, r: &RangeSpec, path: &str) -> Result<Box<dyn Query>, SearchError> {
        let resolved = self.resolve(&r.field, &format!("{path}.field"))?;
        match resolved {
            Resolved::Mapped(_, FieldType::I64 | FieldType::F64 | FieldType::Date) => {}
            _ => {
                return Err(SearchError::bad(
                    format!("{path}.field"),
                    format!(
                    "range queries need an i64, f64 or date field in the mapping; `{}` is not one",
                    r.field
                ),
                ))
            }
        }
        let bound = |inclusive: &Option<serde_json::Value>,
                     exclusive: &Option<serde_json::Value>,
                     names: (&str, &str)|
         -> Result<Bound<Term>, SearchError> {
            match (inclusive, exclusive) {
                (Some(_), Some(_)) => Err(SearchError::bad(
                    format!("{path}.{}", names.0),
                    format!("give `{}` or `{}`, not both", names.0, names.1),
                )),
                (Some(v), None) => Ok(Bound::Included(self.value_term(
                    &resolved,
                    v,
                    &format!("{path}.{}", names.0),
                )?)),
                (None, Some(v)) => Ok(Bound::Excluded(self.value_term(
                    &resolved,
                    v,
                    &format!("{path}.{}", names.1),
                )?)),
                (None, None) => Ok(Bound::Unbounded),
            }
        };
        let lower = bound(&r.gte, &r.gt, ("gte", "gt"))?;
        let upper = bound(&r.lte, &r.lt, ("lte", "lt"))?;
        if matches!((&lower, &upper), (Bound::Unbounded, Bound::Unbounded)) {
            return Err(SearchError::bad(
                path,
                "a range needs at least one of gt, gte, lt, lte",
            ));
        }
        Ok(Box::new(RangeQuery::new(lower, upper)))
    }

    fn build_bool(&self, b: &BoolSpec, path: &str) -> Result<Box<dyn Query>, SearchError> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for (occur, name, list) in [
            (Occur::Must, "must", &b.must),
            (Occur::Should, "should", &b.should),
            (Occur::MustNot, "must_not", &b.must_not),
        ] {
            for (i, spec) in list.iter().enumerate() {
                clauses.push((occur, self.build(spec, &format!("{path}.{name}[{i}]"))?));
            }
        }
        if clauses.is_empty() {
            return Err(SearchError::bad(
                path,
                "a bool query needs at least one clause in must, should or must_not",
            ));
        }
        if b.must.is_empty() && b.should.is_empty() {
            // Only exclusions: exclude from everything.
            clauses.push((Occur::Must, Box::new(AllQuery)));
        }
        Ok(Box::new(BooleanQuery::new(clauses)))
    }

    fn build_query_string(
        &self,
        q: &QueryStringSpec,
        path: &str,
    ) -> Result<Box<dyn Query>, SearchError> {
        let (text, default_fields, conjunction) = match q {
            QueryStringSpec::Text(text) => (text.as_str(), None, false),
            QueryStringSpec::Full(full) => (
                full.query.as_str(),
                full.default_fields.as_ref(),
                full.conjunction,
            ),
        };
        // tantivy ends and splits JSON paths at U+0000 and U+0001: a query string carrying them
        // would address something else (and trips an assertion inside tantivy's parser).
        if let Some(at) = text.find(['\0', '\u{1}']) {
            return Err(SearchError::BadQuery {
                field: path.to_string(),
                message: "a query string may not contain the control characters U+0000 or U+0001"
                    .into(),
                position: Some(at),
            });
        }
        let (mut ast, errors) = tantivy::query_grammar::parse_query_lenient(text);
        if let Some(first) = errors.first() {
            return Err(SearchError::BadQuery {
                field: path.to_string(),
                message: format!("at position {}: {}", first.pos, first.message),
                position: Some(first.pos),
            });
        }
        let fields = match default_fields {
            Some(names) => names
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    match self.resolve(name, &format!("{path}.default_fields[{i}]"))? {
                        Resolved::Mapped(field, _) => Ok(field),
                        Resolved::Dynamic(..) => Err(SearchError::bad(
                            format!("{path}.default_fields[{i}]"),
                            "default fields need a mapping (the dynamic mapping searches the whole document)",
                        )),
                    }
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => self.default_text_fields()?,
        };
        if self.mapping.dynamic {
            self.rewrite_dynamic(&mut ast, path)?;
        }
        let mut parser = QueryParser::new(self.schema.clone(), fields, self.tokenizers.clone());
        if conjunction {
            parser.set_conjunction_by_default();
        }
        parser
            .build_query_from_user_input_ast(ast)
            .map_err(|e| SearchError::bad(path, e.to_string()))
    }

    fn default_text_fields(&self) -> Result<Vec<Field>, SearchError> {
        if self.mapping.dynamic {
            return Ok(vec![self
                .schema
                .get_field(DOC_FIELD)
                .map_err(SearchError::engine)?]);
        }
        self.mapping
            .fields
            .iter()
            .filter(|f| f.indexed && matches!(f.field_type, FieldType::Text { .. }))
            .map(|f| self.schema.get_field(&f.name).map_err(SearchError::engine))
            .collect()
    }

    /// In the dynamic mapping, `title:rust` means the `title` path of the document field.
    fn rewrite_dynamic(&self, ast: &mut UserInputAst, path: &str) -> Result<(), SearchError> {
        let qualify = |name: &mut String| {
            if self.schema.get_field(name).is_err() {
                *name = format!("{DOC_FIELD}.{name}");
            }
        };
        match ast {
            UserInputAst::Clause(clauses) => {
                for (_, clause) in clauses {
                    self.rewrite_dynamic(clause, path)?;
                }
            }
            UserInputAst::Boost(inner, _) => self.rewrite_dynamic(inner, path)?,
            UserInputAst::Leaf(leaf) => match leaf.as_mut() {
                UserInputLeaf::Literal(literal) => {
                    if let Some(name) = literal.field_name.as_mut() {
                        qualify(name);
                    }
                }
                UserInputLeaf::Range { field, .. } => {
                    return Err(SearchError::bad(
                        path,
                        format!(
                            "range on `{}`: range queries need a mapped i64, f64 or date field",
                            field.as_deref().unwrap_or("the default field")
                        ),
                    ))
                }
                UserInputLeaf::Set {
                    field: Some(name), ..
                }
                | UserInputLeaf::Regex {
                    field: Some(name), ..
                } => qualify(name),
                UserInputLeaf::Exists { field } => qualify(field),
                _ => {}
            },
        }
        Ok(())
    }
}

fn as_i64(value: &serde_json::Value) -> Option<i64> {
    match value {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn as_f64(value: &serde_json::Value) -> Option<f64> {
    match value {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn as_bool(value: &serde_json::Value) -> Option<bool> {
    match value {
        serde_json::Value::Bool(b) => Some(*b),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn as_date(value: &serde_json::Value) -> Option<DateTime> {
    let text = value.as_str()?;
    let parsed = tantivy::time::OffsetDateTime::parse(
        text,
        &tantivy::time::format_description::well_known::Rfc3339,
    )
    .ok()?;
    Some(DateTime::from_utc(parsed))
}
