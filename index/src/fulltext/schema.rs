//! The tantivy schema of a `fulltext` mapping: the key, the source partition (to drop a
//! partition's documents on rollback), the whole document in the dynamic mapping, and one field
//! per mapped field.

use tantivy::schema::{
    DateOptions, IndexRecordOption, JsonObjectOptions, NumericOptions, Schema, TextFieldIndexing,
    TextOptions, STORED, STRING,
};

use super::{DOC_FIELD, ID_FIELD, PARTITION_FIELD};
use crate::mapping::{FieldType, Mapping};

/// The tantivy schema of a mapping.
pub fn schema(mapping: &Mapping) -> Schema {
    let mut builder = Schema::builder();
    builder.add_text_field(ID_FIELD, STRING | STORED);
    builder.add_u64_field(PARTITION_FIELD, NumericOptions::default().set_indexed());
    if mapping.dynamic {
        let indexing = TextFieldIndexing::default()
            .set_tokenizer("default")
            .set_index_option(IndexRecordOption::WithFreqsAndPositions);
        builder.add_json_field(
            DOC_FIELD,
            JsonObjectOptions::default()
                .set_stored()
                .set_indexing_options(indexing),
        );
    }
    for f in &mapping.fields {
        let name = f.name.as_str();
        match &f.field_type {
            FieldType::Text { tokenizer } => {
                let mut options = TextOptions::default();
                if f.indexed {
                    options = options.set_indexing_options(
                        TextFieldIndexing::default()
                            .set_tokenizer(tokenizer)
                            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
                    );
                }
                if f.stored {
                    options = options.set_stored();
                }
                builder.add_text_field(name, options);
            }
            FieldType::Keyword => {
                let mut options = TextOptions::default();
                if f.indexed {
                    options = options.set_indexing_options(
                        TextFieldIndexing::default()
                            .set_tokenizer("raw")
                            .set_index_option(IndexRecordOption::Basic),
                    );
                }
                if f.stored {
                    options = options.set_stored();
                }
                builder.add_text_field(name, options);
            }
            FieldType::I64 | FieldType::F64 | FieldType::Bool => {
                let mut options = NumericOptions::default().set_fast();
                if f.indexed {
                    options = options.set_indexed();
                }
                if f.stored {
                    options = options.set_stored();
                }
                match f.field_type {
                    FieldType::I64 => builder.add_i64_field(name, options),
                    FieldType::F64 => builder.add_f64_field(name, options),
                    _ => builder.add_bool_field(name, options),
                };
            }
            FieldType::Date => {
                let mut options = DateOptions::default().set_fast();
                if f.indexed {
                    options = options.set_indexed();
                }
                if f.stored {
                    options = options.set_stored();
                }
                builder.add_date_field(name, options);
            }
        }
    }
    builder.build()
}
