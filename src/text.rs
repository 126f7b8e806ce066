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
    normalize_with_offsets(text).text
}

/// A normal form together with where each of its bytes came from in the original text.
#[derive(Debug, Clone, PartialEq)]
pub struct NormalizedText {
    /// Exactly [`normalize`]'s output.
    pub text: String,
    /// For every byte of `text`, the character index (not byte) in the original text of the
    /// character it came from. A separating space maps to the character that ended the
    /// previous word.
    pub origin: Vec<u32>,
}

impl NormalizedText {
    /// The original character span `start..end` (end exclusive) of the normalised bytes
    /// `from..to`, which must start and end inside words (not on a separating space).
    pub fn original_span(&self, from: usize, to: usize) -> (usize, usize) {
        (self.origin[from] as usize, self.origin[to - 1] as usize + 1)
    }
}

/// [`normalize`], remembering the original character of every output byte, so that a match
/// found in normalised text (the dictionary matcher's) maps back to character offsets of the
/// text as given. Each original character is decomposed on its own; since every character
/// that canonical reordering could move is a combining mark, and combining marks are dropped,
/// this equals decomposing the whole string.
pub fn normalize_with_offsets(text: &str) -> NormalizedText {
    let mut out = String::with_capacity(text.len());
    let mut origin = Vec::with_capacity(text.len());
    let mut pending_space = false;
    let mut last_char = 0u32;
    // (decomposed character, index of the original character it came from)
    let mut chars: Vec<(char, u32)> = Vec::with_capacity(text.len());
    for (i, c) in text.chars().enumerate() {
        // ASCII decomposes to itself: skip the decomposition machinery for most text.
        if c.is_ascii() {
            chars.push((c, i as u32));
        } else {
            chars.extend(
                std::iter::once(c)
                    .nfkd()
                    .filter(|d| !is_combining_mark(*d))
                    .map(|d| (d, i as u32)),
            );
        }
    }
    let mut i = 0;
    while i < chars.len() {
        let (c, from) = chars[i];
        // Possessive: "Crohn's" -> "crohn", "Alzheimer’s" -> "alzheimer".
        if (c == '\'' || c == '\u{2019}')
            && i > 0
            && chars[i - 1].0.is_alphanumeric()
            && matches!(chars.get(i + 1), Some(('s', _)) | Some(('S', _)))
            && !chars.get(i + 2).is_some_and(|n| n.0.is_alphanumeric())
        {
            i += 2;
            continue;
        }
        if c.is_alphanumeric() {
            if pending_space && !out.is_empty() {
                out.push(' ');
                origin.push(last_char);
            }
            pending_space = false;
            for lower in c.to_lowercase() {
                out.push(lower);
                origin.extend(std::iter::repeat_n(from, lower.len_utf8()));
            }
            last_char = from;
        } else {
            pending_space = true;
        }
        i += 1;
    }
    NormalizedText { text: out, origin }
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
    fn offsets_point_back_to_original_characters() {
        let n = normalize_with_offsets("Ä Crohn's  Dísease, ＣＯＶＩＤ");
        assert_eq!(n.text, "a crohn disease covid");
        assert_eq!(n.origin.len(), n.text.len());
        let span = |word: &str| {
            let from = n.text.find(word).unwrap();
            n.original_span(from, from + word.len())
        };
        assert_eq!(span("a"), (0, 1));
        assert_eq!(span("crohn"), (2, 7));
        assert_eq!(span("crohn disease"), (2, 18));
        assert_eq!(span("covid"), (20, 25));
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
