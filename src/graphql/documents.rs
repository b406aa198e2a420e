//! Parsed and validated documents, kept by their text. Every client sends
//! the same few documents (`me` above all); parsing one with async-graphql's
//! pest grammar and validating it took a quarter of a `me` request's CPU
//! (profile in the README). A document seen before is cloned instead of
//! parsed, and one sent without variables skips validation too: the result
//! of validating a document depends only on its text, the operation chosen
//! and the variables, and the schema and its limits are fixed while the
//! server runs. Only successes are kept; failures are worked out each time.

use std::sync::Arc;

use async_graphql::{
    Request, ServerError, ValidationResult,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextValidation},
    parser::types::ExecutableDocument,
};

/// Most bytes of document text kept (each entry also holds its syntax tree,
/// a few times the text): repeated documents are few, a flood of distinct
/// ones is not admitted past the frequent ones (moka's TinyLFU).
const BUDGET: u64 = 4 * 1024 * 1024;

#[derive(Clone)]
pub struct Documents(moka::sync::Cache<Arc<str>, Arc<Kept>>);

/// A document as parsed, and the validations it passed, by operation name
/// (requests without variables only).
struct Kept {
    document: ExecutableDocument,
    validated: std::sync::RwLock<Vec<(Option<String>, ValidationResult)>>,
}

/// Put into a request without variables: where its validation is kept.
struct Validation {
    kept: Arc<Kept>,
    operation: Option<String>,
}

impl Default for Documents {
    fn default() -> Self {
        let weigh = |text: &Arc<str>, _: &Arc<Kept>| u32::try_from(text.len()).unwrap_or(u32::MAX);
        Self(moka::sync::Cache::builder().max_capacity(BUDGET).weigher(weigh).build())
    }
}

impl Documents {
    /// The request's document, parsed once and kept in the request for the
    /// schema (from the cache when its text was seen before). A parse error
    /// is left for the schema to report with its code.
    pub fn parse<'r>(&self, request: &'r mut Request) -> Option<&'r ExecutableDocument> {
        let text: &str = &request.query;
        let kept = match self.0.get(text) {
            Some(kept) => {
                request.set_parsed_query(kept.document.clone());
                kept
            }
            None => {
                let text = Arc::<str>::from(text);
                let document = request.parsed_query().ok()?.clone();
                let kept = Arc::new(Kept { document, validated: Default::default() });
                self.0.insert(text, kept.clone());
                kept
            }
        };
        if request.variables.is_empty() {
            let operation = request.operation_name.clone();
            request.data.insert(Validation { kept, operation });
        }
        request.parsed_query().ok()
    }
}

impl Kept {
    fn validated(&self, operation: &Option<String>) -> Option<ValidationResult> {
        let validated = self.validated.read().ok()?;
        validated.iter().find(|(name, _)| name == operation).map(|(_, result)| *result)
    }

    fn keep(&self, operation: &Option<String>, result: ValidationResult) {
        if let Ok(mut validated) = self.validated.write() {
            // Bounded by the operations the document defines.
            if !validated.iter().any(|(name, _)| name == operation) {
                validated.push((operation.clone(), result));
            }
        }
    }
}

/// The extension that answers validation from the cache for requests
/// `Documents::parse` marked (no variables), and fills it.
pub struct CachedValidation;

impl ExtensionFactory for CachedValidation {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(CachedValidation)
    }
}

#[async_trait::async_trait]
impl Extension for CachedValidation {
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let Some(Validation { kept, operation }) = ctx.data_opt::<Validation>() else {
            return next.run(ctx).await;
        };
        if let Some(result) = kept.validated(operation) {
            return Ok(result);
        }
        let result = next.run(ctx).await?;
        kept.keep(operation, result);
        Ok(result)
    }
}
