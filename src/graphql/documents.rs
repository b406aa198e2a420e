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
pub struct Documents {
    parsed: moka::sync::Cache<Arc<str>, Arc<ExecutableDocument>>,
    validated: moka::sync::Cache<ValidationKey, ValidationResult>,
}

/// A request without variables: its document text and chosen operation.
#[derive(Clone, PartialEq, Eq, Hash)]
struct ValidationKey(Arc<str>, Option<String>);

impl Default for Documents {
    fn default() -> Self {
        let weigh =
            |text: &Arc<str>, _: &Arc<ExecutableDocument>| u32::try_from(text.len()).unwrap_or(u32::MAX);
        Self {
            parsed: moka::sync::Cache::builder().max_capacity(BUDGET).weigher(weigh).build(),
            validated: moka::sync::Cache::builder()
                .max_capacity(BUDGET)
                .weigher(|key: &ValidationKey, _: &ValidationResult| {
                    u32::try_from(key.0.len()).unwrap_or(u32::MAX)
                })
                .build(),
        }
    }
}

impl Documents {
    /// The request's document, parsed once and kept in the request for the
    /// schema (from the cache when its text was seen before). A parse error
    /// is left for the schema to report with its code.
    pub fn parse<'r>(&self, request: &'r mut Request) -> Option<&'r ExecutableDocument> {
        let text: &str = &request.query;
        let known = self.parsed.get(text);
        match known {
            Some(document) => request.set_parsed_query(ExecutableDocument::clone(&document)),
            None => {
                let text = Arc::<str>::from(text);
                let document = request.parsed_query().ok()?.clone();
                self.parsed.insert(text, Arc::new(document));
            }
        }
        if request.variables.is_empty() {
            let key = ValidationKey(Arc::from(request.query.as_str()), request.operation_name.clone());
            request.data.insert(key);
        }
        request.parsed_query().ok()
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
        let (Some(key), Some(documents)) = (ctx.data_opt::<ValidationKey>(), ctx.data_opt::<Documents>())
        else {
            return next.run(ctx).await;
        };
        if let Some(result) = documents.validated.get(key) {
            return Ok(result);
        }
        let result = next.run(ctx).await?;
        documents.validated.insert(key.clone(), result);
        Ok(result)
    }
}
