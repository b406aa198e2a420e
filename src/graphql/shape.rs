//! Limits async-graphql does not have: aliases and top-level fields. One
//! request with hundreds of aliased `login` fields must not become hundreds
//! of attempts (rate limits count each one too; this caps the request).

use std::collections::HashSet;

use async_graphql::parser::types::{ExecutableDocument, OperationDefinition, Selection, SelectionSet};

/// Counts of the operation's shape.
#[derive(Default, Debug)]
struct Shape {
    aliases: usize,
    root_fields: usize,
}

/// `Err(message)` when the operation has more aliases or top-level fields than allowed.
pub fn check_shape(
    document: &ExecutableDocument,
    operation: &OperationDefinition,
    max_aliases: usize,
    max_root_fields: usize,
) -> Result<(), String> {
    let mut shape = Shape::default();
    let mut seen = HashSet::new();
    walk(document, &operation.selection_set.node, true, &mut shape, &mut seen);
    if shape.aliases > max_aliases {
        return Err(format!(
            "the operation has {} aliases; at most {max_aliases} are allowed",
            shape.aliases
        ));
    }
    if shape.root_fields > max_root_fields {
        return Err(format!(
            "the operation has {} top-level fields; at most {max_root_fields} are allowed",
            shape.root_fields
        ));
    }
    Ok(())
}

fn walk<'a>(
    document: &'a ExecutableDocument,
    set: &'a SelectionSet,
    root: bool,
    shape: &mut Shape,
    seen: &mut HashSet<&'a str>,
) {
    for selection in &set.items {
        match &selection.node {
            Selection::Field(field) => {
                if root {
                    shape.root_fields += 1;
                }
                if field.node.alias.is_some() {
                    shape.aliases += 1;
                }
                walk(document, &field.node.selection_set.node, false, shape, seen);
            }
            Selection::InlineFragment(fragment) => {
                walk(document, &fragment.node.selection_set.node, root, shape, seen);
            }
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                // Each fragment counts once; this also stops on cyclic spreads,
                // which validation rejects later.
                if seen.insert(name)
                    && let Some(fragment) = document.fragments.get(name)
                {
                    walk(document, &fragment.node.selection_set.node, root, shape, seen);
                }
            }
        }
    }
}
