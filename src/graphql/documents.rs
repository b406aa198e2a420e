//! Parsed and validated documents, kept by their text. Every client sends
//! the same few documents (`me` above all); parsing one with async-graphql's
//! pest grammar and validating it took a quarter of a `me` request's CPU
//! (profile in docs/performance.md). A document seen before is cloned instead of
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

/// Most memory the kept documents may take, by the estimate in `weigh`.
/// Only documents that passed validation are kept (a flood of unknown
/// fields keeps nothing), and moka's TinyLFU admits a flood of distinct
/// valid ones no further than the documents clients repeat.
const BUDGET: u64 = 8 * 1024 * 1024;

/// An entry's memory, roughly: its syntax tree takes a few times its text,
/// plus the cache's own bookkeeping.
fn weigh(text: &Arc<str>, _: &Arc<Kept>) -> u32 {
    u32::try_from(1024 + 8 * text.len()).unwrap_or(u32::MAX)
}

#[derive(Clone)]
pub struct Documents(moka::sync::Cache<Arc<str>, Arc<Kept>>);

/// A document as parsed, and the validations it passed, by operation name
/// (requests without variables only).
struct Kept {
    document: ExecutableDocument,
    validated: std::sync::RwLock<Vec<(Option<String>, ValidationResult)>>,
}

/// Put into every request whose document parsed, for `CachedValidation`.
struct Validation {
    documents: Documents,
    kept: Arc<Kept>,
    /// Not kept yet: kept under this text once it validates.
    new: Option<Arc<str>>,
    operation: Option<String>,
    /// Sent without variables: its validation may be reused.
    reusable: bool,
}

impl Default for Documents {
    fn default() -> Self {
        Self(moka::sync::Cache::builder().max_capacity(BUDGET).weigher(weigh).build())
    }
}

impl Documents {
    /// The request's document, parsed once and kept in the request for the
    /// schema (from the cache when its text was seen before). A parse error
    /// is left for the schema to report with its code.
    pub fn parse<'r>(&self, request: &'r mut Request) -> Option<&'r ExecutableDocument> {
        let text: &str = &request.query;
        let (kept, new) = match self.0.get(text) {
            Some(kept) => {
                request.set_parsed_query(kept.document.clone());
                (kept, None)
            }
            None => {
                let text = Arc::<str>::from(text);
                let document = request.parsed_query().ok()?.clone();
                (Arc::new(Kept { document, validated: Default::default() }), Some(text))
            }
        };
        let validation = Validation {
            documents: self.clone(),
            kept,
            new,
            operation: request.operation_name.clone(),
            reusable: request.variables.is_empty(),
        };
        request.data.insert(validation);
        request.parsed_query().ok()
    }
}

impl Documents {
    /// Documents kept (for tests and metrics).
    pub fn len(&self) -> u64 {
        self.0.run_pending_tasks();
        self.0.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
/// without variables, and keeps documents once they validated.
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
        let Some(Validation { documents, kept, new, operation, reusable }) = ctx.data_opt::<Validation>()
        else {
            return next.run(ctx).await;
        };
        if let Some(result) = kept.validated(operation).filter(|_| *reusable) {
            return Ok(result);
        }
        let result = next.run(ctx).await?;
        if *reusable {
            kept.keep(operation, result);
        }
        if let Some(text) = new {
            documents.0.insert(text.clone(), kept.clone());
        }
        Ok(result)
    }
}
