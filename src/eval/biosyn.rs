//! Mention preprocessing of the BioSyn / SapBERT evaluation protocol (Sung et al. 2020, the
//! `query_preprocess.py` and `utils.py` of dmis-lab/BioSyn), re-implemented so that
//! `eval link --protocol biosyn` numbers are comparable with the published ones. The counting
//! side (name-level ranks, a part hits on any gold id) is in [`super::metrics`].
//!
//! For each gold mention, in this order:
//! 1. **Gold ids**: when they mix OMIM and other ids (`OMIM:201400|C535668`), the OMIM ones are
//!    dropped, as BioSyn treats them as auxiliary ([`gold_ids`]).
//! 2. **Abbreviations** ([`expand_tokens`]): every whitespace token that is a short form
//!    defined in the document is replaced by its long form; so is each `/`-separated piece of
//!    a token, and a token followed by a comma. Repeated while anything changes, at most
//!    [`MAX_EXPANSION_PASSES`] times so that definitions quoting each other cannot loop.
//!    BioSyn uses Ab3P; we use Schwartz–Hearst ([`super::abbrev::expansion_map`], which also
//!    holds each short form in its other number and prefers long forms spelled by initials,
//!    as Ab3P's rules do).
//! 3. **Composites** ([`split_composite`]): a mention with n ≥ 2 gold ids is split into parts
//!    by the first rule that applies — `P of [both] [the] A and|or [the] B` → `P of A`, `P of B`;
//!    a coordination `A, B and|or [the] C STEM` → `A STEM`, `B STEM`, `C STEM` (commas and
//!    conjunctions both separate items); one token `A/B` → the mention with `A`, then with `B`;
//!    n tokens → one part each. The split is used only when it gives exactly n parts;
//!    otherwise the mention is linked whole. BioSyn's slash rule, as its regular expression is
//!    written, attaches the words after the slash to the second part only; here they follow
//!    every part, as the rule's group names (prefix, suffix) intend.
//! 4. **Lowercase and punctuation removal**: [`crate::text::normalize`], which also strips
//!    accents and a possessive `'s` — the normal form the dictionary's names already have.

use std::collections::BTreeMap;

/// Bound on repeated abbreviation expansion.
pub const MAX_EXPANSION_PASSES: usize = 4;

/// A gold mention prepared for linking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Normalised texts to link: the parts of a split composite, else the one mention.
    pub parts: Vec<String>,
    /// An abbreviation was expanded.
    pub expanded: bool,
    /// The mention was split into parts.
    pub split: bool,
}

/// Steps 2 to 4 for a mention with `gold_count` gold ids (after [`gold_ids`]).
pub fn prepare(
    mention: &str,
    gold_count: usize,
    abbreviations: &BTreeMap<String, String>,
) -> Query {
    let expanded = expand_tokens(mention, abbreviations);
    let was_expanded = expanded != mention;
    let (parts, split) = match split_composite(&expanded, gold_count) {
        Some(parts) => (parts, true),
        None => (vec![expanded], false),
    };
    Query {
        parts: parts.iter().map(|p| crate::text::normalize(p)).collect(),
        expanded: was_expanded,
        split,
    }
}

/// Gold ids as BioSyn reads them: OMIM ids dropped when mixed with other ids.
pub fn gold_ids(ids: &[String]) -> Vec<String> {
    let is_omim = |id: &String| id.starts_with("OMIM:");
    if ids.iter().any(is_omim) && !ids.iter().all(is_omim) {
        ids.iter().filter(|id| !is_omim(id)).cloned().collect()
    } else {
        ids.to_vec()
    }
}

/// Step 2: token-level abbreviation expansion (see the module docs).
pub fn expand_tokens(mention: &str, abbreviations: &BTreeMap<String, String>) -> String {
    let mut current = mention.split_whitespace().collect::<Vec<_>>().join(" ");
    if abbreviations.is_empty() {
        return current;
    }
    let lookup = |t: &str| abbreviations.get(t).map_or(t, String::as_str).to_string();
    for _ in 0..MAX_EXPANSION_PASSES {
        let next: Vec<String> = current
            .split(' ')
            .map(|token| {
                if token.contains('/') {
                    let pieces: Vec<String> = token.split('/').map(lookup).collect();
                    return pieces.join("/");
                }
                match token.strip_suffix(',') {
                    Some(bare) => format!("{},", lookup(bare)),
                    None => lookup(token),
                }
            })
            .collect();
        let next = next.join(" ");
        if next == current {
            break;
        }
        current = next;
    }
    current
}

/// Step 3: the parts of a composite mention with `n` gold ids, or `None` when no rule gives
/// exactly `n` parts (or `n < 2`).
pub fn split_composite(mention: &str, n: usize) -> Option<Vec<String>> {
    if n < 2 {
        return None;
    }
    let tokens: Vec<&str> = mention.split_whitespace().collect();
    let rules: [Rule; 4] = [of_phrase, coordination, slash, one_per_token];
    rules
        .iter()
        .filter_map(|rule| rule(&tokens))
        .find(|parts| !parts.is_empty())
        .filter(|parts| parts.len() == n)
}

/// A splitting rule: the parts of a mention's tokens, if the rule applies.
type Rule = fn(&[&str]) -> Option<Vec<String>>;

/// A plain word: letters, digits and hyphens.
fn is_word(token: &str) -> bool {
    !token.is_empty() && token.chars().all(|c| c.is_alphanumeric() || c == '-')
}

fn is_conjunction(token: &str) -> bool {
    matches!(token.to_lowercase().as_str(), "and" | "or" | "and/or")
}

/// `P of [both] [the] A... and|or [the] B...` -> `P of A...`, `P of B...`.
fn of_phrase(tokens: &[&str]) -> Option<Vec<String>> {
    if tokens.len() < 5 || !tokens[1].eq_ignore_ascii_case("of") || !is_word(tokens[0]) {
        return None;
    }
    let mut rest = &tokens[2..];
    for optional in ["both", "the"] {
        if rest
            .first()
            .is_some_and(|t| t.eq_ignore_ascii_case(optional))
        {
            rest = &rest[1..];
        }
    }
    if !rest.iter().all(|t| is_word(t)) {
        return None;
    }
    let j = rest
        .iter()
        .rposition(|t| t.eq_ignore_ascii_case("and") || t.eq_ignore_ascii_case("or"))?;
    let first = &rest[..j];
    let mut second = &rest[j + 1..];
    if second
        .first()
        .is_some_and(|t| t.eq_ignore_ascii_case("the"))
    {
        second = &second[1..];
    }
    if first.is_empty() || second.is_empty() {
        return None;
    }
    let head = format!("{} of", tokens[0]);
    Some(vec![
        format!("{head} {}", first.join(" ")),
        format!("{head} {}", second.join(" ")),
    ])
}

/// `A, B and|or [the] C STEM...` -> `A STEM`, `B STEM`, `C STEM` (an item may hold several
/// words: "sporadic breast, brain and kidney cancer").
fn coordination(tokens: &[&str]) -> Option<Vec<String>> {
    // The last conjunction followed by an item word and at least one stem token.
    let the_after = |j: usize| {
        usize::from(
            tokens
                .get(j + 1)
                .is_some_and(|t| t.eq_ignore_ascii_case("the")),
        )
    };
    let j = (1..tokens.len())
        .rev()
        .find(|&j| is_conjunction(tokens[j]) && j + 2 + the_after(j) < tokens.len())?;
    let skip = the_after(j);
    let last_item = tokens[j + 1..=j + 1 + skip].join(" ");
    if !is_word(tokens[j + 1 + skip]) {
        return None;
    }
    let stem = tokens[j + 2 + skip..].join(" ");
    let mut items: Vec<String> = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for token in &tokens[..j] {
        if is_conjunction(token) {
            items.extend((!current.is_empty()).then(|| current.join(" ")));
            current.clear();
            continue;
        }
        let (word, ends_item) = match token.strip_suffix(',') {
            Some(word) => (word, true),
            None => (*token, false),
        };
        if !is_word(word) {
            return None;
        }
        current.push(word);
        if ends_item {
            items.push(current.join(" "));
            current.clear();
        }
    }
    items.extend((!current.is_empty()).then(|| current.join(" ")));
    if items.is_empty() {
        return None;
    }
    items.push(last_item);
    Some(
        items
            .into_iter()
            .map(|item| format!("{item} {stem}"))
            .collect(),
    )
}

/// One token `A/B` (not "and/or") -> the mention with `A`, then with `B`.
fn slash(tokens: &[&str]) -> Option<Vec<String>> {
    if tokens.iter().any(|t| t.eq_ignore_ascii_case("and/or")) {
        return None;
    }
    let mut slashed = tokens.iter().enumerate().filter(|(_, t)| t.contains('/'));
    let (i, token) = slashed.next()?;
    if slashed.next().is_some() {
        return None;
    }
    let pieces: Vec<&str> = token.split('/').collect();
    if pieces.iter().any(|p| p.is_empty()) {
        return None;
    }
    Some(
        pieces
            .iter()
            .map(|piece| {
                tokens[..i]
                    .iter()
                    .chain(std::iter::once(piece))
                    .chain(&tokens[i + 1..])
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect(),
    )
}

/// Each token a part (`split_composite` keeps this only when there are n tokens).
fn one_per_token(tokens: &[&str]) -> Option<Vec<String>> {
    Some(tokens.iter().map(|t| t.to_string()).collect())
}
