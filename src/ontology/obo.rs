//! OBO 1.2 flat-file loader (`hp.obo`, Disease Ontology `doid.obo`).
//!
//! Reads `[Term]` stanzas: `id`, `name`, `def`, `synonym` (scope and synonym type), the old
//! `exact_synonym` / `related_synonym` / ... tags, `xref`, `is_a`, `is_obsolete`,
//! `replaced_by`, `alt_id`. `[Typedef]` and `[Instance]` stanzas and unknown tags are skipped.
//! Synonyms are kept exactly as listed (the name table dedupes later). Each term's `types` are
//! the top-level branches it descends from — the children of the ontology's roots, such as
//! HPO's "Phenotypic abnormality" or "Mode of inheritance" — so that users can restrict linking
//! to one branch.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

use super::concept::{Concept, Synonym, SynonymKind};
use super::ids::normalize_id;
use super::lines::Lines;
use super::Loaded;
use crate::error::{Error, Result};

#[derive(PartialEq)]
enum Stanza {
    Header,
    Term,
    Other,
}

/// Parses an OBO document.
pub fn read(reader: impl BufRead, path: &Path) -> Result<Loaded> {
    let mut lines = Lines::new(reader, path);
    let mut loaded = Loaded::default();
    let mut stanza = Stanza::Header;
    let mut current: Option<(usize, Concept)> = None;
    let mut obsolete_synonyms = 0usize;

    while let Some((line_no, line)) = lines.next_line()? {
        let line = line.trim();
        if line.is_empty() || line.starts_with('!') {
            continue;
        }
        if line.starts_with('[') {
            finish_term(current.take(), path, &mut loaded)?;
            stanza = match line {
                "[Term]" => Stanza::Term,
                _ if line.ends_with(']') => Stanza::Other,
                _ => {
                    return Err(Error::parse(
                        path,
                        line_no,
                        None,
                        format!("malformed stanza header {line:?}"),
                    ))
                }
            };
            if stanza == Stanza::Term {
                current = Some((line_no, Concept::default()));
            }
            continue;
        }
        let Some((tag, value)) = line.split_once(':') else {
            return Err(Error::parse(
                path,
                line_no,
                None,
                format!("expected `tag: value`, found {:?}", truncate(line)),
            ));
        };
        let value = value.trim();
        match stanza {
            Stanza::Header => {
                if tag == "data-version" && loaded.version.is_none() {
                    loaded.version = Some(value.to_string());
                }
            }
            Stanza::Other => {}
            Stanza::Term => {
                let (_, term) = current.as_mut().expect("a Term stanza has a concept");
                let field_err = |message: String| Error::parse(path, line_no, Some(tag), message);
                match tag {
                    "id" => term.id = normalize_id(strip_comment(value)),
                    "name" => term.name = value.to_string(),
                    "def" => term.definition = Some(quoted(value).map_err(field_err)?.0),
                    "synonym" => {
                        let (text, rest) = quoted(value).map_err(field_err)?;
                        let mut words = rest.split_whitespace();
                        let scope = words.next().unwrap_or("");
                        let synonym_type = words.next().filter(|w| !w.starts_with('['));
                        let mut kind = synonym_kind(scope, synonym_type).ok_or_else(|| {
                            field_err(format!(
                                "unknown synonym scope {scope:?} (expected EXACT, RELATED, BROAD or NARROW)"
                            ))
                        })?;
                        // A discarded name is no longer an exact synonym, whatever its scope.
                        if synonym_type == Some("obsolete_synonym") {
                            obsolete_synonyms += 1;
                            kind = SynonymKind::Related;
                        }
                        term.synonyms.push(Synonym { text, kind });
                    }
                    "exact_synonym" | "related_synonym" | "broad_synonym" | "narrow_synonym" => {
                        let (text, _) = quoted(value).map_err(field_err)?;
                        let scope = tag.trim_end_matches("_synonym").to_ascii_uppercase();
                        let kind = synonym_kind(&scope, None).expect("known scope");
                        term.synonyms.push(Synonym { text, kind });
                    }
                    "xref" | "xref_analog" => {
                        let id = first_word(strip_comment(value));
                        if !id.is_empty() && id.contains(':') && !id.starts_with("http") {
                            term.xrefs.push(normalize_id(&unescape(id)));
                        }
                    }
                    "is_a" => {
                        let id = first_word(strip_comment(value));
                        if id.is_empty() {
                            return Err(field_err("empty is_a".into()));
                        }
                        term.parents.push(normalize_id(id));
                    }
                    "alt_id" => term.alt_ids.push(normalize_id(strip_comment(value))),
                    "replaced_by" => term.replaced_by.push(normalize_id(strip_comment(value))),
                    "is_obsolete" => term.obsolete = value.starts_with("true"),
                    _ => {}
                }
            }
        }
    }
    finish_term(current.take(), path, &mut loaded)?;
    if obsolete_synonyms > 0 {
        loaded.warnings.push(format!(
            "{obsolete_synonyms} synonyms typed obsolete_synonym kept as related synonyms"
        ));
    }
    assign_top_level_types(&mut loaded.concepts);
    Ok(loaded)
}

fn finish_term(term: Option<(usize, Concept)>, path: &Path, loaded: &mut Loaded) -> Result<()> {
    let Some((line, term)) = term else {
        return Ok(());
    };
    if term.id.is_empty() {
        return Err(Error::parse(
            path,
            line,
            Some("id"),
            "[Term] stanza without an id",
        ));
    }
    if term.name.is_empty() && !term.obsolete {
        return Err(Error::parse(
            path,
            line,
            Some("name"),
            format!("term {} has no name", term.id),
        ));
    }
    loaded.concepts.push(term);
    Ok(())
}

fn synonym_kind(scope: &str, synonym_type: Option<&str>) -> Option<SynonymKind> {
    if let Some(t) = synonym_type {
        let t = t.to_ascii_lowercase();
        if t.contains("abbrev") || t.contains("acronym") {
            return Some(SynonymKind::Abbreviation);
        }
    }
    Some(match scope {
        "EXACT" => SynonymKind::Exact,
        "RELATED" => SynonymKind::Related,
        "BROAD" => SynonymKind::Broad,
        "NARROW" => SynonymKind::Narrow,
        // OBO 1.2 allows a synonym with no scope; it then defaults to RELATED.
        "" => SynonymKind::Related,
        s if s.starts_with('[') => SynonymKind::Related,
        _ => return None,
    })
}

/// Reads a leading OBO quoted string (`"..."` with backslash escapes) and returns it with the
/// rest of the value.
fn quoted(value: &str) -> std::result::Result<(String, &str), String> {
    let rest = value
        .strip_prefix('"')
        .ok_or_else(|| format!("expected a quoted string, found {:?}", truncate(value)))?;
    let mut out = String::with_capacity(rest.len());
    let mut chars = rest.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, 'W')) => out.push(' '),
                Some((_, other)) => out.push(other),
                None => break,
            },
            '"' => return Ok((out, rest[i + 1..].trim_start())),
            _ => out.push(c),
        }
    }
    Err(format!("unterminated quoted string {:?}", truncate(value)))
}

/// Removes a trailing `! comment` and `{qualifiers}` from an unquoted value.
fn strip_comment(value: &str) -> &str {
    let mut end = value.len();
    let bytes = value.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if (b == b'!' || b == b'{') && (i == 0 || bytes[i - 1] != b'\\') {
            end = i;
            break;
        }
    }
    value[..end].trim()
}

fn first_word(value: &str) -> &str {
    value.split_whitespace().next().unwrap_or("")
}

fn unescape(value: &str) -> String {
    value.replace("\\:", ":").replace("\\,", ",")
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

/// Sets each active term's `types` to the names of the top-level branches (children of a root)
/// it descends from. Roots are active terms without parents.
fn assign_top_level_types(concepts: &mut [Concept]) {
    let index: HashMap<&str, usize> = concepts
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.as_str(), i))
        .collect();
    let is_root = |i: usize| !concepts[i].obsolete && concepts[i].parents.is_empty();
    let is_branch = |i: usize| {
        !concepts[i].obsolete
            && concepts[i]
                .parents
                .iter()
                .any(|p| index.get(p.as_str()).is_some_and(|&j| is_root(j)))
    };
    let mut memo: Vec<Option<Vec<usize>>> = vec![None; concepts.len()];
    let mut types: Vec<Vec<usize>> = Vec::with_capacity(concepts.len());
    for i in 0..concepts.len() {
        types.push(branches_of(i, concepts, &index, &is_branch, &mut memo));
    }
    let names: Vec<String> = concepts.iter().map(|c| c.name.clone()).collect();
    for (concept, branches) in concepts.iter_mut().zip(types) {
        if concept.obsolete {
            continue;
        }
        for b in branches {
            if !concept.types.contains(&names[b]) {
                concept.types.push(names[b].clone());
            }
        }
    }
}

/// Top-level branches above term `start`, walking is_a edges with an explicit stack (deep
/// ontologies would overflow a recursive walk) and memoising per term. Cycles are cut.
fn branches_of(
    start: usize,
    concepts: &[Concept],
    index: &HashMap<&str, usize>,
    is_branch: &dyn Fn(usize) -> bool,
    memo: &mut [Option<Vec<usize>>],
) -> Vec<usize> {
    if let Some(done) = &memo[start] {
        return done.clone();
    }
    // Post-order traversal: a term is resolved once all its parents are.
    let mut stack: Vec<(usize, bool)> = vec![(start, false)];
    let mut on_stack = vec![false; 0];
    on_stack.resize(concepts.len(), false);
    while let Some((i, expanded)) = stack.pop() {
        if memo[i].is_some() {
            continue;
        }
        let parents: Vec<usize> = concepts[i]
            .parents
            .iter()
            .filter_map(|p| index.get(p.as_str()).copied())
            .collect();
        if !expanded {
            on_stack[i] = true;
            stack.push((i, true));
            for &p in &parents {
                if memo[p].is_none() && !on_stack[p] {
                    stack.push((p, false));
                }
            }
            continue;
        }
        on_stack[i] = false;
        let mut result = Vec::new();
        if is_branch(i) {
            result.push(i);
        } else {
            for p in parents {
                for &b in memo[p].as_deref().unwrap_or(&[]) {
                    if !result.contains(&b) {
                        result.push(b);
                    }
                }
            }
        }
        memo[i] = Some(result);
    }
    memo[start].clone().unwrap_or_default()
}
