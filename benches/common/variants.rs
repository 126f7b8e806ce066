//! Synthetic name variants shared by the benches: a real name under clinical qualifiers
//! ("chronic familial ..."), so that an index can grow to millions of names that look like a
//! terminology's. Included with `#[path]` by `scale.rs` and `lexical.rs`.

/// Qualifiers that make a variant's names; variant v uses one (v <= 30) or two.
const QUALIFIERS: [&str; 30] = [
    "acute",
    "chronic",
    "severe",
    "mild",
    "bilateral",
    "left",
    "right",
    "congenital",
    "familial",
    "recurrent",
    "early onset",
    "late onset",
    "primary",
    "secondary",
    "progressive",
    "isolated",
    "partial",
    "complete",
    "transient",
    "persistent",
    "idiopathic",
    "hereditary",
    "juvenile",
    "adult",
    "neonatal",
    "localized",
    "generalized",
    "subacute",
    "intermittent",
    "episodic",
];

/// Variant `v` of `name`: `name` itself for 0, then one qualifier before it (v <= 30), then two.
pub fn variant_text(name: &str, v: usize) -> String {
    if v == 0 {
        return name.to_string();
    }
    let first = QUALIFIERS[(v - 1) % QUALIFIERS.len()];
    match (v - 1) / QUALIFIERS.len() {
        0 => format!("{first} {name}"),
        n => format!("{} {first} {name}", QUALIFIERS[(n - 1) % QUALIFIERS.len()]),
    }
}
