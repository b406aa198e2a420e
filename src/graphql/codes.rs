//! Errors as GraphQL answers: a service's `AuthError` becomes an error with
//! `extensions.code` (and `field`, `retryAfter`), and, since async-graphql
//! leaves its own parse, validation and argument errors without a code,
//! this extension gives those the contract's codes too.

use std::sync::Arc;

use async_graphql::{
    ErrorExtensions, Response, ServerError, ServerResult, ValidationResult, Variables,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextValidation,
    },
    parser::types::ExecutableDocument,
};
use domain::error::{AuthError, Code, Input};

/// The GraphQL argument field a service's `Input` arrives in.
fn field_name(input: Input) -> &'static str {
    match input {
        Input::Email => "email",
        Input::Password => "password",
        Input::NewPassword => "newPassword",
        Input::Name => "name",
        Input::Image => "image",
        Input::Provider => "provider",
        Input::Code => "code",
        Input::Credential => "credential",
        Input::Challenge => "challenge",
        Input::First => "first",
        Input::After => "after",
        Input::Url => "url",
        Input::EventTypes => "eventTypes",
        Input::EventType => "type",
        Input::UserId => "userId",
        Input::Audience => "audience",
        Input::Roles => "roles",
        Input::Role => "role",
        Input::Reason => "reason",
        Input::Until => "until",
        Input::Search => "search",
    }
}

/// A service's error as a GraphQL error with its `extensions`.
pub fn to_graphql(error: &AuthError) -> async_graphql::Error {
    error.report();
    async_graphql::Error::new(error.to_string()).extend_with(|_, e| {
        e.set("code", error.code().as_str());
        match error {
            AuthError::BadUserInput { input, .. } => e.set("field", field_name(*input)),
            AuthError::RateLimited { retry_after } => e.set("retryAfter", (*retry_after).max(1)),
            AuthError::PermissionDenied(permission) => e.set("permission", *permission),
            AuthError::AccountBanned { until } => {
                e.set("bannedUntil", until.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
            }
            AuthError::SecondFactorRequired { challenge } => {
                e.set("challenge", secrecy::ExposeSecret::expose_secret(challenge));
                e.set("methods", domain::factors::METHODS.to_vec());
            }
            _ => {}
        }
    })
}

/// Resolvers turn service results into GraphQL results through this, never
/// through a bare `?` (which would keep the message and drop the code).
pub trait GqlResult<T> {
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T> GqlResult<T> for Result<T, AuthError> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(|e| to_graphql(&e))
    }
}

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
        next.run(ctx, query, variables).await.map_err(|e| with_code(parse_error(e), Code::ParseFailed))
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|errors| errors.into_iter().map(classify_validation).collect())
    }

    /// Every error carries a code: those async-graphql raises itself while
    /// executing (an undefined or unparsable argument) are bad user input;
    /// anything else without a code is internal.
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut response = next.run(ctx, operation_name).await;
        for err in &mut response.errors {
            if err.extensions.as_ref().is_some_and(|e| e.get("code").is_some()) {
                continue;
            }
            // These messages quote the client's values (a password, a token):
            // they are replaced, never logged.
            let (code, message, field) = if let Some(name) =
                err.message.strip_prefix("Variable ").and_then(|m| m.strip_suffix(" is not defined."))
            {
                (Code::BadUserInput, format!("variable ${name} is not defined"), Some(name.to_owned()))
            } else if err.message.starts_with("Failed to parse")
                || err.message.starts_with("Invalid value")
                || err.message.contains("Expected input type")
            {
                let field = required_field(&err.message).unwrap_or_else(|| "input".to_owned());
                (Code::BadUserInput, format!("invalid value for `{field}`"), Some(field))
            } else {
                tracing::error!(path = ?err.path, "uncoded GraphQL error");
                (Code::Internal, "internal server error".to_owned(), None)
            };
            let mut replaced = with_code(ServerError::new(message, err.locations.first().copied()), code);
            replaced.path = std::mem::take(&mut err.path);
            if let Some(field) = field {
                replaced.extensions.get_or_insert_with(Default::default).set("field", field);
            }
            *err = replaced;
        }
        response
    }
}

/// A variable whose value does not fit its type is bad user input (naming
/// the offending input field); anything else is an invalid document.
fn classify_validation(err: ServerError) -> ServerError {
    if let Some(field) = variable_field(&err.message) {
        let mut err = with_code(err, Code::BadUserInput);
        err.extensions.get_or_insert_with(Default::default).set("field", field);
        err
    } else {
        with_code(err, Code::ValidationFailed)
    }
}

/// `..., field "password" of type "String!" is required but not provided`
/// names the missing input field.
fn required_field(message: &str) -> Option<String> {
    if !message.contains("is required but not provided") {
        return None;
    }
    let rest = &message[message.find(", field \"")? + 9..];
    Some(rest[..rest.find('"')?].to_owned())
}

/// A parse error without the echoed source line (it may hold a password):
/// pest's `= expected ...` summary and the position only.
fn parse_error(err: ServerError) -> ServerError {
    let expected =
        err.message.lines().find_map(|line| line.trim().strip_prefix("= ")).unwrap_or("syntax error");
    ServerError::new(format!("the document does not parse: {expected}"), err.locations.first().copied())
}

/// `Invalid value for argument "input.password", expected type "String"`
/// names the offending input: its last path segment is `extensions.field`
/// (or the missing field, when one is required but not provided).
fn variable_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("Invalid value for argument \"")?;
    if let Some(field) = required_field(message) {
        return Some(field);
    }
    let path = &rest[..rest.find('"')?];
    Some(path.rsplit('.').next().unwrap_or(path).to_owned())
}

/// `err` with `code`, unless it already has one.
pub fn with_code(mut err: ServerError, code: Code) -> ServerError {
    let extensions = err.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        extensions.set("code", code.as_str());
    }
    err
}

/// A request refused before execution (a transport or limit error) as a
/// GraphQL response.
pub fn refusal(error: &AuthError) -> Response {
    Response::from_errors(vec![with_code(ServerError::new(error.to_string(), None), error.code())])
}
