//! Concept id normalisation: every id medlink stores or compares is a prefixed string.
//!
//! Sources spell ids differently — MEDIC 2012 writes bare MeSH ids (`D003920`) and bare OMIM
//! numbers (`601462`), CTD writes `MESH:D003920` and `DO:DOID:0060395`, HPO cross-references say
//! `SNOMEDCT_US:22298006`, PubTator corpora mix bare MeSH and `OMIM:` ids. [`normalize_id`] maps
//! all of them to one spelling so that dictionary ids and gold ids meet.

/// Canonical prefix spellings, keyed by the upper-cased prefix as sources write it.
const PREFIX_ALIASES: &[(&str, &str)] = &[
    ("MESH", "MESH"),
    ("MSH", "MESH"),
    ("OMIM", "OMIM"),
    ("MIM", "OMIM"),
    ("HP", "HP"),
    ("HPO", "HP"),
    ("DOID", "DOID"),
    ("SNOMEDCT", "SNOMEDCT"),
    ("SNOMEDCT_US", "SNOMEDCT"),
    ("SNOMED", "SNOMEDCT"),
    ("SCTID", "SNOMEDCT"),
    ("SCT", "SNOMEDCT"),
    ("UMLS", "UMLS"),
    ("UMLS_CUI", "UMLS"),
    ("CUI", "UMLS"),
    ("ICD10CM", "ICD10CM"),
    ("ICD-10-CM", "ICD10CM"),
    ("ICD10", "ICD10"),
    ("ORPHA", "ORPHA"),
    ("ORPHANET", "ORPHA"),
    ("NCIT", "NCIT"),
    ("MONDO", "MONDO"),
];

/// Maps an id as some source or corpus writes it to medlink's prefixed form.
///
/// - bare MeSH descriptor / supplementary ids (`D003920`, `C535484`) -> `MESH:D003920`;
/// - bare digits (`601462`, as in MEDIC 2012 and NCBI-disease) -> `OMIM:601462`;
/// - bare UMLS CUIs (`C0027051`: C + 7 digits) -> `UMLS:C0027051`;
/// - `DO:DOID:9352` -> `DOID:9352`; prefix aliases (`MSH`, `SNOMEDCT_US`, `MIM`...) -> canonical;
/// - anything else is returned trimmed and unchanged.
pub fn normalize_id(raw: &str) -> String {
    let id = raw.trim();
    let id = id.strip_prefix("DO:").unwrap_or(id);
    if let Some((prefix, local)) = id.split_once(':') {
        let mut upper = prefix.to_ascii_uppercase();
        // Dated SNOMED prefixes as in Disease Ontology: `SNOMEDCT_US_2016_03_01:...`.
        if upper.starts_with("SNOMEDCT_US_") {
            upper = "SNOMEDCT".to_string();
        }
        if let Some((_, canonical)) = PREFIX_ALIASES.iter().find(|(alias, _)| *alias == upper) {
            return format!("{canonical}:{}", local.trim());
        }
        return id.to_string();
    }
    // OBO PURL style: `HP_0001250`, `DOID_9352`.
    if let Some((prefix, local)) = id.split_once('_') {
        if !prefix.is_empty()
            && prefix.bytes().all(|b| b.is_ascii_uppercase())
            && !local.is_empty()
            && local.bytes().all(|b| b.is_ascii_digit())
        {
            return normalize_id(&format!("{prefix}:{local}"));
        }
    }
    if is_umls_cui(id) {
        return format!("UMLS:{id}");
    }
    if is_bare_mesh(id) {
        return format!("MESH:{id}");
    }
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
        return format!("OMIM:{id}");
    }
    id.to_string()
}

fn is_umls_cui(id: &str) -> bool {
    id.len() == 8 && id.starts_with('C') && id[1..].bytes().all(|b| b.is_ascii_digit())
}

fn is_bare_mesh(id: &str) -> bool {
    let bytes = id.as_bytes();
    bytes.len() >= 7
        && matches!(bytes[0], b'D' | b'C')
        && bytes[1..].iter().all(|b| b.is_ascii_digit())
}

/// The prefix of a normalised id (`MESH` for `MESH:D003920`), or `""` if it has none.
pub fn prefix(id: &str) -> &str {
    id.split_once(':').map(|(p, _)| p).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_id_cases() {
        let cases = [
            ("D003920", "MESH:D003920"),
            ("C535484", "MESH:C535484"),
            ("C0027051", "UMLS:C0027051"),
            ("601462", "OMIM:601462"),
            ("OMIM:601462", "OMIM:601462"),
            ("MESH:D003920", "MESH:D003920"),
            ("MSH:D003920", "MESH:D003920"),
            ("DO:DOID:0060395", "DOID:0060395"),
            ("SNOMEDCT_US:22298006", "SNOMEDCT:22298006"),
            ("SNOMEDCT_US_2016_03_01:22298006", "SNOMEDCT:22298006"),
            ("HP:0000256", "HP:0000256"),
            (" D012345 ", "MESH:D012345"),
            ("UMLS:C0027051", "UMLS:C0027051"),
            ("HP_0001250", "HP:0001250"),
            ("DOID_9352", "DOID:9352"),
            ("weird", "weird"),
        ];
        for (raw, expected) in cases {
            assert_eq!(normalize_id(raw), expected, "raw {raw:?}");
        }
    }
}
