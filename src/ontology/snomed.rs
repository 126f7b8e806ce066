//! SNOMED CT loader for an RF2 *snapshot*: `sct2_Concept_*`, `sct2_Description_*` and
//! `sct2_Relationship_*` files (tab-separated, one header row), found anywhere up to
//! [`MAX_DEPTH`] folders below the given directory — so a release root, its `Snapshot/` folder
//! and `Snapshot/Terminology/` all work.
//!
//! Promises:
//! - every row of the concept file becomes a [`Concept`] `SNOMEDCT:<id>`; inactive concepts are
//!   kept with `obsolete = true` so ids in old annotations still resolve;
//! - only active descriptions in a kept language ([`LoadOptions::keeps_language`]) are used; the
//!   fully specified name is a [`SynonymKind::FullySpecifiedName`] synonym and its semantic tag
//!   (`disorder` in "Myocardial infarction (disorder)") a type; synonyms are
//!   [`SynonymKind::Exact`], because RF2 only files a synonym when it means the concept;
//! - the name is the synonym a language reference set marks preferred when a
//!   `der2_cRefset_Language*Snapshot*` file is present (US English first), else the synonym equal
//!   to the FSN without its tag, else the first synonym, else the FSN without its tag; a concept
//!   with no usable description is skipped with a warning;
//! - active inferred `116680003 |Is a|` relationships become [`Concept::parents`];
//! - headers, column counts and the fields medlink reads are checked: a bad file fails with
//!   [`Error::Parse`] naming file, line and field, never a panic. Full and Delta files are
//!   refused, because their repeated rows would be read as contradictions.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::concept::{Concept, SynonymKind};
use super::lines::{self, Lines};
use super::{LoadOptions, Loaded};
use crate::error::{Error, Result};

/// How many folders below the given path the RF2 files are searched for: a release root holds
/// them at `Snapshot/Terminology/` and `Snapshot/Refset/Language/` (three levels).
pub const MAX_DEPTH: usize = 4;

const FULLY_SPECIFIED_NAME: u64 = 900_000_000_000_003_001;
const SYNONYM: u64 = 900_000_000_000_013_009;
const IS_A: u64 = 116_680_003;
const PREFERRED: u64 = 900_000_000_000_548_007;
/// US English language reference set: the name medlink shows when several dialects are present.
const US_ENGLISH: u64 = 900_000_000_000_509_007;
const GB_ENGLISH: u64 = 900_000_000_000_508_004;

const CONCEPT_HEADER: &[&str] = &[
    "id",
    "effectiveTime",
    "active",
    "moduleId",
    "definitionStatusId",
];
const DESCRIPTION_HEADER: &[&str] = &[
    "id",
    "effectiveTime",
    "active",
    "moduleId",
    "conceptId",
    "languageCode",
    "typeId",
    "term",
    "caseSignificanceId",
];
const RELATIONSHIP_HEADER: &[&str] = &[
    "id",
    "effectiveTime",
    "active",
    "moduleId",
    "sourceId",
    "destinationId",
    "relationshipGroup",
    "typeId",
    "characteristicTypeId",
    "modifierId",
];
const LANGUAGE_HEADER: &[&str] = &[
    "id",
    "effectiveTime",
    "active",
    "moduleId",
    "refsetId",
    "referencedComponentId",
    "acceptabilityId",
];

/// The RF2 files of one snapshot, each list sorted by path.
#[derive(Debug, Default)]
struct Rf2Files {
    concepts: Vec<PathBuf>,
    descriptions: Vec<PathBuf>,
    relationships: Vec<PathBuf>,
    languages: Vec<PathBuf>,
}

/// A concept being assembled from the three files.
struct Node {
    id: u64,
    active: bool,
    /// effectiveTime as a number, to keep the newest row should an id repeat.
    effective: u32,
    /// Kept fully specified names in file order (one per language at most, in practice).
    fsns: Vec<String>,
    /// Kept synonyms in file order, with their description ids for the language refset.
    synonyms: Vec<(u64, String)>,
    parents: Vec<u64>,
}

/// Loads an RF2 snapshot found at or below `path` (a file's own folder is searched when a file
/// is given).
pub fn load_dir(path: &Path, opts: &LoadOptions) -> Result<Loaded> {
    let root = if path.is_file() {
        path.parent().unwrap_or(Path::new("."))
    } else {
        path
    };
    let files = find_files(root)?;
    let mut loaded = Loaded {
        version: version_of(&files.concepts),
        ..Loaded::default()
    };

    let mut nodes: Vec<Node> = Vec::new();
    let mut by_id: HashMap<u64, usize> = HashMap::new();
    for file in &files.concepts {
        read_concepts(file, &mut nodes, &mut by_id)?;
    }

    let preferred = read_language_refsets(&files.languages)?;

    let mut orphan_descriptions = 0usize;
    for file in &files.descriptions {
        orphan_descriptions += read_descriptions(file, opts, &mut nodes, &by_id)?;
    }
    if orphan_descriptions > 0 {
        loaded.warnings.push(format!(
            "{orphan_descriptions} active descriptions name concepts missing from the concept file and were skipped"
        ));
    }

    if files.relationships.is_empty() {
        loaded.warnings.push(format!(
            "no sct2_Relationship_*.txt under {}; concepts have no parents",
            root.display()
        ));
    }
    let mut orphan_relationships = 0usize;
    for file in &files.relationships {
        orphan_relationships += read_relationships(file, &mut nodes, &by_id)?;
    }
    if orphan_relationships > 0 {
        loaded.warnings.push(format!(
            "{orphan_relationships} active is-a relationships start at concepts missing from the concept file and were skipped"
        ));
    }
    drop(by_id);

    let mut unnamed = 0usize;
    loaded.concepts.reserve(nodes.len());
    for node in nodes {
        match node.into_concept(&preferred) {
            Some(concept) => loaded.concepts.push(concept),
            None => unnamed += 1,
        }
    }
    if unnamed > 0 {
        loaded.warnings.push(format!(
            "{unnamed} concepts have no active description in the kept languages and were skipped"
        ));
    }

    loaded.files = [
        files.concepts,
        files.descriptions,
        files.relationships,
        files.languages,
    ]
    .concat();
    Ok(loaded)
}

/// Walks `root` breadth-first up to [`MAX_DEPTH`] levels and sorts the RF2 files it finds.
fn find_files(root: &Path) -> Result<Rf2Files> {
    let mut found = Rf2Files::default();
    let mut level = vec![root.to_path_buf()];
    for depth in 0..=MAX_DEPTH {
        let mut next = Vec::new();
        for dir in &level {
            let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| Error::io(dir, e))?;
                let path = entry.path();
                let file_type = entry.file_type().map_err(|e| Error::io(&path, e))?;
                // Follow links to folders too: unpacked releases are often linked into place.
                if file_type.is_dir() || (file_type.is_symlink() && path.is_dir()) {
                    if depth < MAX_DEPTH {
                        next.push(path);
                    }
                    continue;
                }
                let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                    continue;
                };
                if !name.ends_with(".txt") {
                    continue;
                }
                let list = if name.starts_with("sct2_Concept_") {
                    &mut found.concepts
                } else if name.starts_with("sct2_Description_") {
                    &mut found.descriptions
                } else if name.starts_with("sct2_Relationship_") {
                    &mut found.relationships
                } else if name.starts_with("der2_cRefset_Language") && name.contains("Snapshot") {
                    &mut found.languages
                } else {
                    continue;
                };
                list.push(path);
            }
        }
        next.sort();
        level = next;
    }

    for (list, what) in [
        (&mut found.concepts, "sct2_Concept_"),
        (&mut found.descriptions, "sct2_Description_"),
        (&mut found.relationships, "sct2_Relationship_"),
    ] {
        keep_snapshots(list, what, root)?;
    }
    for (list, what) in [
        (&found.concepts, "sct2_Concept_*.txt"),
        (&found.descriptions, "sct2_Description_*.txt"),
    ] {
        if list.is_empty() {
            return Err(Error::io(
                root,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!(
                        "no SNOMED CT RF2 snapshot here: found no {what} file in this folder or {MAX_DEPTH} levels below"
                    ),
                ),
            ));
        }
    }
    for list in [
        &mut found.concepts,
        &mut found.descriptions,
        &mut found.relationships,
        &mut found.languages,
    ] {
        list.sort();
    }
    Ok(found)
}

/// Keeps the snapshot files of one kind; refuses a folder that holds only Full or Delta files.
fn keep_snapshots(list: &mut Vec<PathBuf>, what: &str, root: &Path) -> Result<()> {
    fn name(p: &Path) -> String {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
    if list.iter().any(|p| name(p).contains("Snapshot")) {
        list.retain(|p| name(p).contains("Snapshot"));
        return Ok(());
    }
    let (history, other): (Vec<PathBuf>, Vec<PathBuf>) = list.drain(..).partition(|p| {
        let n = name(p);
        n.contains("_Full") || n.contains("_Delta")
    });
    if other.is_empty() && !history.is_empty() {
        let names: Vec<String> = history.iter().map(|p| name(p)).collect();
        return Err(Error::InvalidInput(format!(
            "{}: found only Full or Delta {what}*.txt files ({}); medlink reads an RF2 Snapshot",
            root.display(),
            names.join(", ")
        )));
    }
    *list = other;
    Ok(())
}

/// The release named by the concept file, e.g. `INT_20250101` from
/// `sct2_Concept_Snapshot_INT_20250101.txt`.
fn version_of(concept_files: &[PathBuf]) -> Option<String> {
    let versions: Vec<String> = concept_files
        .iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?;
            let rest = name.strip_prefix("sct2_Concept_")?.strip_suffix(".txt")?;
            // `Snapshot_INT_20250101` or `Snapshot-en_US1000124_20250301`: drop the release type.
            let (_, version) = rest.split_once('_')?;
            (!version.is_empty()).then(|| version.to_string())
        })
        .collect();
    (!versions.is_empty()).then(|| versions.join("+"))
}

/// Reads the header row and checks it names `expected` columns in order.
fn check_header<R: std::io::BufRead>(lines: &mut Lines<R>, expected: &[&str]) -> Result<()> {
    let path = lines.path().to_path_buf();
    let Some((line_no, line)) = lines.next_line()? else {
        return Err(Error::parse(
            &path,
            1,
            None,
            format!("empty file; expected the header `{}`", expected.join("\t")),
        ));
    };
    let cols: Vec<&str> = line.split('\t').collect();
    if cols.len() != expected.len() {
        return Err(Error::parse(
            &path,
            line_no,
            None,
            format!(
                "header has {} tab-separated columns, expected {}: `{}`",
                cols.len(),
                expected.len(),
                expected.join("\t")
            ),
        ));
    }
    for (found, want) in cols.iter().zip(expected) {
        if found.trim() != *want {
            return Err(Error::parse(
                &path,
                line_no,
                Some(want),
                format!("header names column `{found}` where `{want}` belongs"),
            ));
        }
    }
    Ok(())
}

/// Parses one row's SCTID column; SCTIDs are 6 to 18 digits without a leading zero.
fn sctid(value: &str, field: &str, path: &Path, line_no: usize) -> Result<u64> {
    let well_formed = (6..=18).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_digit())
        && !value.starts_with('0');
    // 18 digits always fit in a u64, so the parse only fails on what the check rejects.
    match value.parse::<u64>() {
        Ok(id) if well_formed => Ok(id),
        _ => Err(Error::parse(
            path,
            line_no,
            Some(field),
            format!("`{value}` is not an SCTID"),
        )),
    }
}

fn active(value: &str, path: &Path, line_no: usize) -> Result<bool> {
    match value {
        "1" => Ok(true),
        "0" => Ok(false),
        _ => Err(Error::parse(
            path,
            line_no,
            Some("active"),
            format!("`{value}` is not 0 or 1"),
        )),
    }
}

/// effectiveTime as `YYYYMMDD`, returned as a number that orders like the date.
fn effective_time(value: &str, path: &Path, line_no: usize) -> Result<u32> {
    let well_formed = value.len() == 8 && value.bytes().all(|b| b.is_ascii_digit());
    match value.parse::<u32>() {
        Ok(date) if well_formed => Ok(date),
        _ => Err(Error::parse(
            path,
            line_no,
            Some("effectiveTime"),
            format!("`{value}` is not a YYYYMMDD date"),
        )),
    }
}

/// Streams the data rows of an RF2 file after checking its header.
fn for_each_row(
    path: &Path,
    header: &[&str],
    mut row: impl FnMut(&[&str], usize) -> Result<()>,
) -> Result<()> {
    let mut lines = Lines::new(lines::open(path)?, path);
    check_header(&mut lines, header)?;
    let n = header.len();
    while let Some((line_no, line)) = lines.next_line()? {
        if line.is_empty() {
            continue;
        }
        let cols = lines::split_columns(line, '\t', n..=n, path, line_no)?;
        row(&cols, line_no)?;
    }
    Ok(())
}

fn read_concepts(
    path: &Path,
    nodes: &mut Vec<Node>,
    by_id: &mut HashMap<u64, usize>,
) -> Result<()> {
    for_each_row(path, CONCEPT_HEADER, |cols, line_no| {
        let id = sctid(cols[0], "id", path, line_no)?;
        let effective = effective_time(cols[1], path, line_no)?;
        let is_active = active(cols[2], path, line_no)?;
        match by_id.get(&id) {
            // A snapshot lists each concept once; should two files overlap, the newest row wins.
            Some(&idx) => {
                let node = &mut nodes[idx];
                if effective >= node.effective {
                    node.effective = effective;
                    node.active = is_active;
                }
            }
            None => {
                by_id.insert(id, nodes.len());
                nodes.push(Node {
                    id,
                    active: is_active,
                    effective,
                    fsns: Vec::new(),
                    synonyms: Vec::new(),
                    parents: Vec::new(),
                });
            }
        }
        Ok(())
    })
}

/// Preferred description ids per language refset, US English first, then GB English, then
/// the others in the order they appear.
fn read_language_refsets(files: &[PathBuf]) -> Result<Vec<HashSet<u64>>> {
    let mut sets: Vec<(u64, HashSet<u64>)> = Vec::new();
    for path in files {
        for_each_row(path, LANGUAGE_HEADER, |cols, line_no| {
            effective_time(cols[1], path, line_no)?;
            if !active(cols[2], path, line_no)? {
                return Ok(());
            }
            let refset = sctid(cols[4], "refsetId", path, line_no)?;
            let description = sctid(cols[5], "referencedComponentId", path, line_no)?;
            let acceptability = sctid(cols[6], "acceptabilityId", path, line_no)?;
            if acceptability != PREFERRED {
                return Ok(());
            }
            match sets.iter_mut().find(|(r, _)| *r == refset) {
                Some((_, set)) => {
                    set.insert(description);
                }
                None => sets.push((refset, HashSet::from([description]))),
            }
            Ok(())
        })?;
    }
    let rank = |refset: u64| match refset {
        US_ENGLISH => 0,
        GB_ENGLISH => 1,
        _ => 2,
    };
    // Stable: refsets of equal rank keep their order of appearance.
    sets.sort_by_key(|(refset, _)| rank(*refset));
    Ok(sets.into_iter().map(|(_, set)| set).collect())
}

/// Reads descriptions into their concepts; returns how many active, kept descriptions named an
/// unknown concept.
fn read_descriptions(
    path: &Path,
    opts: &LoadOptions,
    nodes: &mut [Node],
    by_id: &HashMap<u64, usize>,
) -> Result<usize> {
    let mut orphans = 0usize;
    for_each_row(path, DESCRIPTION_HEADER, |cols, line_no| {
        let id = sctid(cols[0], "id", path, line_no)?;
        effective_time(cols[1], path, line_no)?;
        if !active(cols[2], path, line_no)? || !opts.keeps_language(cols[5]) {
            return Ok(());
        }
        let concept = sctid(cols[4], "conceptId", path, line_no)?;
        let type_id = sctid(cols[6], "typeId", path, line_no)?;
        let term = cols[7].trim();
        if term.is_empty() {
            return Err(Error::parse(path, line_no, Some("term"), "empty term"));
        }
        let Some(&idx) = by_id.get(&concept) else {
            orphans += 1;
            return Ok(());
        };
        let node = &mut nodes[idx];
        match type_id {
            FULLY_SPECIFIED_NAME => node.fsns.push(term.to_string()),
            SYNONYM => node.synonyms.push((id, term.to_string())),
            // Text definitions belong in their own file; other types carry no name.
            _ => {}
        }
        Ok(())
    })?;
    Ok(orphans)
}

/// Adds active is-a relationships as parents; returns how many started at unknown concepts.
fn read_relationships(
    path: &Path,
    nodes: &mut [Node],
    by_id: &HashMap<u64, usize>,
) -> Result<usize> {
    let mut orphans = 0usize;
    for_each_row(path, RELATIONSHIP_HEADER, |cols, line_no| {
        sctid(cols[0], "id", path, line_no)?;
        effective_time(cols[1], path, line_no)?;
        if !active(cols[2], path, line_no)? {
            return Ok(());
        }
        if sctid(cols[7], "typeId", path, line_no)? != IS_A {
            return Ok(());
        }
        let source = sctid(cols[4], "sourceId", path, line_no)?;
        let destination = sctid(cols[5], "destinationId", path, line_no)?;
        let Some(&idx) = by_id.get(&source) else {
            orphans += 1;
            return Ok(());
        };
        let parents = &mut nodes[idx].parents;
        if !parents.contains(&destination) {
            parents.push(destination);
        }
        Ok(())
    })?;
    Ok(orphans)
}

/// Splits "Myocardial infarction (disorder)" into ("Myocardial infarction", Some("disorder")).
///
/// The tag is the last balanced parenthesised group, preceded by a space; a term without one
/// is returned whole.
pub fn split_semantic_tag(fsn: &str) -> (&str, Option<&str>) {
    let term = fsn.trim_end();
    let Some(inner_end) = term.strip_suffix(')').map(str::len) else {
        return (term, None);
    };
    let mut depth = 0usize;
    for (i, c) in term.char_indices().rev() {
        match c {
            ')' => depth += 1,
            '(' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    let base = &term[..i];
                    let tag = term[i + 1..inner_end].trim();
                    if tag.is_empty() || !base.ends_with(char::is_whitespace) {
                        return (term, None);
                    }
                    let base = base.trim_end();
                    return if base.is_empty() {
                        (term, None)
                    } else {
                        (base, Some(tag))
                    };
                }
            }
            _ => {}
        }
    }
    (term, None)
}

impl Node {
    /// The finished concept, or `None` when no kept description can name it.
    fn into_concept(self, preferred: &[HashSet<u64>]) -> Option<Concept> {
        let fsn_base = self.fsns.first().map(|f| split_semantic_tag(f).0);
        let chosen = preferred
            .iter()
            .find_map(|set| self.synonyms.iter().position(|(id, _)| set.contains(id)))
            .or_else(|| fsn_base.and_then(|base| self.synonyms.iter().position(|(_, t)| t == base)))
            .or_else(|| (!self.synonyms.is_empty()).then_some(0));
        let name = match chosen {
            Some(pos) => self.synonyms.get(pos)?.1.clone(),
            None => fsn_base?.to_string(),
        };

        let mut concept = Concept::new(format!("SNOMEDCT:{}", self.id), name);
        concept.obsolete = !self.active;
        for fsn in &self.fsns {
            if let (_, Some(tag)) = split_semantic_tag(fsn) {
                if !concept.types.iter().any(|t| t == tag) {
                    concept.types.push(tag.to_string());
                }
            }
        }
        for fsn in self.fsns {
            concept.push_synonym(fsn, SynonymKind::FullySpecifiedName);
        }
        for (_, text) in self.synonyms {
            concept.push_synonym(text, SynonymKind::Exact);
        }
        concept.parents = self
            .parents
            .iter()
            .map(|p| format!("SNOMEDCT:{p}"))
            .collect();
        Some(concept)
    }
}
