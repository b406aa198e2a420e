//! async-graphql leaves parse and validation errors without a code; clients
//! switch on `extensions.code`, so this extension adds the contract's codes.

use std::sync::Arc;

use async_graphql::{
    ServerError, ServerResult, ValidationResult, Variables,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextValidation},
    parser::types::ExecutableDocument,
};

pub const PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
pub const VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";
pub const BAD_REQUEST: &str = "BAD_REQUEST";
pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";

pub struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodes)
    }
}

#[async_trait::async_trait]
impl Extension for ErrorCodes {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        next.run(ctx, query, variables).await.map_err(|e| with_code(e, PARSE_FAILED))
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|errors| errors.into_iter().map(classify_validation).collect())
    }
}

/// A variable whose value does not fit its type is bad user input (naming
/// the offending input field); anything else is an invalid document.
fn classify_validation(err: ServerError) -> ServerError {
    if let Some(field) = variable_field(&err.message) {
        let mut err = with_code(err, BAD_USER_INPUT);
        err.extensions.get_or_insert_with(Default::default).set("field", field);
        err
    } else {
        with_code(err, VALIDATION_FAILED)
    }
}

/// `Invalid value for argument "input.password", expected type "String"`
/// names the offending input: its last path segment is `extensions.field`.
fn variable_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("Invalid value for argument \"")?;
    let path = &rest[..rest.find('"')?];
    Some(path.rsplit('.').next().unwrap_or(path).to_owned())
}

pub fn with_code(mut err: ServerError, code: &str) -> ServerError {
    let extensions = err.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        extensions.set("code", code);
    }
    err
}
