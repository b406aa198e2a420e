//! The checked-in schema matches the code, and the contract's operations
//! validate against it with a real GraphQL validator (apollo-compiler).

use std::path::PathBuf;

use apollo_compiler::{ExecutableDocument, Schema, ast};

/// Every operation of `contract/operations.graphql`.
const IMPLEMENTED: &[&str] = &[
    "Register",
    "Login",
    "Logout",
    "Me",
    "MySessions",
    "RevokeSession",
    "RevokeOtherSessions",
    "ChangePassword",
    "UpdateProfile",
    "DeleteAccount",
    "RequestEmailVerification",
    "VerifyEmail",
    "RequestPasswordReset",
    "ResetPassword",
    "StartTotpSetup",
    "ConfirmTotpSetup",
    "DisableTwoFactor",
    "RegenerateRecoveryCodes",
    "CompleteSignIn",
    "Reauthenticate",
    "SecurityOverview",
    "StartPasskeyRegistration",
    "FinishPasskeyRegistration",
    "StartPasskeySignIn",
    "FinishPasskeySignIn",
    "RemovePasskey",
    "Providers",
    "StartOAuth",
    "LinkOAuth",
    "UnlinkAccount",
    "SetPassword",
    "MyActivity",
    "AuditEvents",
    "CreateWebhookEndpoint",
    "SecurityEvents",
    "AccessToken",
    "AdminUsers",
    "BanUser",
    "UnbanUser",
    "RevokeUserSessions",
    "ResetUserTwoFactor",
    "SetUserRoles",
    "ImpersonateUser",
    "DeleteUser",
    "SendUserPasswordReset",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn schema_graphql_matches_the_code() {
    let checked_in = std::fs::read_to_string(root().join("schema.graphql")).expect("schema.graphql");
    assert!(
        checked_in == authgate::graphql::sdl(),
        "schema.graphql is stale: run `cargo run -- schema > schema.graphql`"
    );
}

#[test]
fn contract_operations_validate_against_the_schema() {
    let sdl = std::fs::read_to_string(root().join("schema.graphql")).expect("schema.graphql");
    let schema = Schema::parse_and_validate(sdl, "schema.graphql").expect("schema.graphql is valid");
    let path = root().join("contract/operations.graphql");
    let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let document = ast::Document::parse(&source, "operations.graphql").expect("operations parse");

    for name in IMPLEMENTED {
        let operation = document
            .definitions
            .iter()
            .find(|d| matches!(d, ast::Definition::OperationDefinition(op) if op.name.as_deref() == Some(*name)))
            .unwrap_or_else(|| panic!("the contract has no operation {name}"));
        // The operation plus the fragments it may use, validated on their own.
        let mut text = operation.to_string();
        for fragment in
            document.definitions.iter().filter(|d| matches!(d, ast::Definition::FragmentDefinition(_)))
        {
            if text.contains(&format!("...{}", fragment.name().map(|n| n.as_str()).unwrap_or_default())) {
                text.push('\n');
                text.push_str(&fragment.to_string());
            }
        }
        ExecutableDocument::parse_and_validate(&schema, &text, format!("{name}.graphql"))
            .unwrap_or_else(|e| panic!("{name} does not validate:\n{e}"));
    }
    // Every operation of the document is in the list (and none twice).
    let mut in_contract: Vec<&str> = document
        .definitions
        .iter()
        .filter_map(|d| match d {
            ast::Definition::OperationDefinition(op) => op.name.as_ref().map(|n| n.as_str()),
            _ => None,
        })
        .collect();
    let mut listed = IMPLEMENTED.to_vec();
    in_contract.sort();
    listed.sort();
    assert_eq!(in_contract, listed, "the contract's operations and this list differ");
}

#[test]
fn every_schema_element_is_documented() {
    use apollo_compiler::schema::ExtendedType;
    let sdl = std::fs::read_to_string(root().join("schema.graphql")).expect("schema.graphql");
    let schema = Schema::parse_and_validate(sdl, "schema.graphql").expect("valid");
    let mut missing = Vec::new();
    let mut check = |what: String, description: Option<&str>| {
        if description.is_none_or(|d| d.trim().is_empty()) {
            missing.push(what);
        }
    };
    for (name, ty) in &schema.types {
        if ty.is_built_in() {
            continue;
        }
        check(format!("type {name}"), ty.description().map(|d| d.as_str()));
        match ty {
            ExtendedType::Object(object) => {
                for (field, def) in &object.fields {
                    check(format!("{name}.{field}"), def.description.as_deref());
                    for arg in &def.arguments {
                        check(format!("{name}.{field}({})", arg.name), arg.description.as_deref());
                    }
                }
            }
            ExtendedType::InputObject(input) => {
                for (field, def) in &input.fields {
                    check(format!("{name}.{field}"), def.description.as_deref());
                }
            }
            ExtendedType::Enum(e) => {
                for (value, def) in &e.values {
                    check(format!("{name}.{value}"), def.description.as_deref());
                }
            }
            _ => {}
        }
    }
    assert!(missing.is_empty(), "undocumented in schema.graphql: {missing:#?}");
}

/// The contract's document uses every root field of the schema: a field a
/// client may send has an operation clients can copy (and the flow runs).
#[test]
fn the_contract_covers_every_root_field() {
    let sdl = std::fs::read_to_string(root().join("schema.graphql")).expect("schema.graphql");
    let schema = Schema::parse_and_validate(sdl, "schema.graphql").expect("valid");
    let source = std::fs::read_to_string(root().join("contract/operations.graphql")).unwrap();
    let document = ast::Document::parse(&source, "operations.graphql").expect("operations parse");
    let mut used = std::collections::BTreeSet::new();
    for definition in &document.definitions {
        if let ast::Definition::OperationDefinition(op) = definition {
            for selection in &op.selection_set {
                if let ast::Selection::Field(field) = selection {
                    used.insert(field.name.to_string());
                }
            }
        }
    }
    let mut roots = std::collections::BTreeSet::new();
    for root_type in ["QueryRoot", "MutationRoot", "SubscriptionRoot"] {
        let apollo_compiler::schema::ExtendedType::Object(object) = &schema.types[root_type] else {
            panic!("{root_type} is an object type")
        };
        roots.extend(object.fields.keys().map(|f| f.to_string()));
    }
    assert_eq!(used, roots, "root fields and the contract's operations");
}

/// Each step-up operation says so in its description (what a client's
/// generated types show), and every such operation is in the one list.
#[test]
fn step_up_operations_name_the_code() {
    let sdl = std::fs::read_to_string(root().join("schema.graphql")).expect("schema.graphql");
    let schema = Schema::parse_and_validate(sdl, "schema.graphql").expect("valid");
    let apollo_compiler::schema::ExtendedType::Object(mutation) = &schema.types["MutationRoot"] else {
        panic!("MutationRoot is an object type")
    };
    for name in authgate::graphql::STEP_UP_OPERATIONS {
        let field = mutation.fields.get(name).unwrap_or_else(|| panic!("{name} is a mutation"));
        let description = field.description.as_deref().unwrap_or_default();
        assert!(description.contains("REAUTHENTICATION_REQUIRED"), "{name}: {description}");
    }
}
