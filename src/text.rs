//! Text normalisation shared by the dictionary, the lexical index and the linker.
//!
//! [`normalize`] is the one canonical form used for exact-name lookup: Unicode compatibility
//! decomposition with accents removed, lowercase, possessive `'s` dropped, every other
//! non-alphanumeric character turned into a single space. It is deliberately conservative — it
//! never changes a letter inside a word — so two names with the same normal form really are the
//! same name. Plural folding is offered separately by [`singular_variant`] because it can be
//! wrong ("diabetes").

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Canonical form of a name or mention for exact matching.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    let chars: Vec<char> = text.nfkd().filter(|c| !is_combining_mark(*c)).collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        // Possessive: "Crohn's" -> "crohn", "Alzheimer’s" -> "alzheimer".
        if (c == '\'' || c == '\u{2019}')
            && i > 0
            && chars[i - 1].is_alphanumeric()
            && matches!(chars.get(i + 1), Some('s') | Some('S'))
            && !chars.get(i + 2).is_some_and(|n| n.is_alphanumeric())
        {
            i += 2;
            continue;
        }
        if c.is_alphanumeric() {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.extend(c.to_lowercase());
        } else {
            pending_space = true;
        }
        i += 1;
    }
    out
}

/// A singular form of a normalised text, if its last word looks like a regular English plural.
///
/// Used as an extra lookup key, never as the canonical form: "kidney cysts" -> "kidney cyst",
/// "tumours" -> "tumour", "ovaries" -> "ovary". Words ending in "ss", "us", "is" or shorter than
/// four letters are left alone ("abscess", "virus", "arthritis", "gas").
pub fn singular_variant(normalized: &str) -> Option<String> {
    let (head, last) = match normalized.rfind(' ') {
        Some(p) => (&normalized[..=p], &normalized[p + 1..]),
        None => ("", normalized),
    };
    if last.len() < 4
        || !last.ends_with('s')
        || last.ends_with("ss")
        || last.ends_with("us")
        || last.ends_with("is")
        || !last.is_ascii()
    {
        return None;
    }
    let singular = if let Some(stem) = last.strip_suffix("ies") {
        format!("{stem}y")
    } else if last.ends_with("ches") || last.ends_with("shes") || last.ends_with("xes") {
        last[..last.len() - 2].to_string()
    } else {
        last[..last.len() - 1].to_string()
    };
    Some(format!("{head}{singular}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_cases() {
        let cases = [
            ("Crohn's Disease", "crohn disease"),
            ("Alzheimer’s disease", "alzheimer disease"),
            (
                "  Type-2   diabetes,  mellitus ",
                "type 2 diabetes mellitus",
            ),
            ("Sjögren syndrome", "sjogren syndrome"),
            ("ＣＯＶＩＤ－１９", "covid 19"),
            ("cats' eyes", "cats eyes"),
            ("it's", "it"),
            ("s's", "s"),
            ("'s", "s"),
            ("", ""),
            ("---", ""),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize(input), expected, "input {input:?}");
        }
    }

    #[test]
    fn singular_cases() {
        let cases = [
            ("kidney cysts", Some("kidney cyst")),
            ("ovaries", Some("ovary")),
            ("patches", Some("patch")),
            ("abscess", None),
            ("virus", None),
            ("arthritis", None),
            ("gas", None),
        ];
        for (input, expected) in cases {
            assert_eq!(
                singular_variant(input).as_deref(),
                expected,
                "input {input:?}"
            );
        }
    }
}
