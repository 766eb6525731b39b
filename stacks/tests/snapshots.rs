//! Rendered templates are what a customer's security team reviews, so each
//! one is a snapshot under `stacks/snapshots/`: a change to a template shows
//! up as a diff in review.

mod support;

#[test]
fn rendered_templates_match_their_snapshots() {
    let mut hashes = String::new();
    for (label, stack) in support::all_examples() {
        support::assert_snapshot(
            &format!("snapshots/{label}.template.json"),
            &stack.template.pretty_json(),
        );
        hashes.push_str(&format!("{label} {}\n", stack.template_hash()));
    }
    // Hashes are stable across runs and platforms: a change here without a
    // template change means the canonical form changed.
    support::assert_snapshot("snapshots/hashes.txt", &hashes);
}
