//! Text normalisation shared by the dictionary, the lexical index and the linker.
//!
//! [`normalize`] is the one canonical form used for exact-name lookup: Unicode compatibility
//! decomposition with accents removed, lowercase, possessive `'s` dropped, every other
//! non-alphanumeric character turned into a single space. It is deliberately conservative — it
//! never changes a letter inside a word — so two names with the same normal form really are the
//! same name. Plural folding is offered separately by [`singular_variant`] because it can be
//! wrong ("diabetes"), and British spellings by [`american_spelling`] ("oedema" -> "edema"):
//! both are extra lookup keys, never the canonical form, so indexes do not depend on them.

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

/// Spelling changes from British to American medical English, each the deletion of one letter:
/// (where the pattern may occur, the pattern, the offset of the letter deleted). No pattern
/// occurs in an American spelling, so the rules only ever fold a British word onto its twin.
const BRITISH_SPELLINGS: [(Position, &str, usize); 17] = [
    (Position::Start, "oedem", 0),     // oedema
    (Position::Start, "oesophag", 0),  // oesophagitis
    (Position::Start, "oestr", 0),     // oestrogen
    (Position::Start, "coeliac", 1),   // coeliac disease
    (Position::Start, "foet", 1),      // foetal, foetus
    (Position::Start, "aetiol", 0),    // aetiology
    (Position::Start, "anaesth", 2),   // anaesthesia
    (Position::Start, "gynaec", 3),    // gynaecological
    (Position::Start, "caesar", 1),    // caesarean
    (Position::Anywhere, "haem", 1),   // haemorrhage, haematuria
    (Position::Anywhere, "aemi", 0),   // anaemia, leukaemia, ischaemic, hypokalaemia
    (Position::Anywhere, "rrhoea", 3), // diarrhoea, amenorrhoea
    (Position::Anywhere, "paed", 1),   // paediatric, orthopaedic
    (Position::Anywhere, "tumour", 4), // tumours
    (Position::Anywhere, "colour", 4),
    (Position::Anywhere, "behaviour", 7),
    (Position::Anywhere, "odour", 3),
];

#[derive(Clone, Copy, PartialEq)]
enum Position {
    Start,
    Anywhere,
}

/// The American spelling of a normalised text, if a word of it is spelled the British way
/// ("oedema of the legs" -> "edema of the legs", "haemorrhagic" -> "hemorrhagic"). Used as an
/// extra lookup key, like [`singular_variant`]: the vocabularies (MeSH, CTD, HPO, SNOMED CT's
/// preferred terms) spell American, clinical notes from the UK do not. The dictionary matcher
/// folds spellings its own way ([`crate::ner::dictionary::word_key`] drops every inner "ae" /
/// "oe" of names and text alike, harmless there because both sides fold); the linker looks a
/// mention up among names stored as written, so it needs this one-way, precise map instead.
pub fn american_spelling(normalized: &str) -> Option<String> {
    let mut changed = false;
    let words: Vec<String> = normalized
        .split(' ')
        .map(|word| {
            if !word.is_ascii() {
                return word.to_string();
            }
            let mut deleted: Vec<usize> = Vec::new();
            for (position, pattern, offset) in BRITISH_SPELLINGS {
                let found = match position {
                    Position::Start => word.starts_with(pattern).then_some(0),
                    Position::Anywhere => word.find(pattern),
                };
                if let Some(at) = found {
                    deleted.push(at + offset);
                }
            }
            if deleted.is_empty() {
                return word.to_string();
            }
            changed = true;
            word.char_indices()
                .filter(|(i, _)| !deleted.contains(i))
                .map(|(_, c)| c)
                .collect()
        })
        .collect();
    changed.then(|| words.join(" "))
}

/// `text` with its HTML / XML character references replaced by the characters they stand for
/// (`&apos;` -> `'`, `&#233;` -> `é`, `&#xE9;` -> `é`), or `None` if it holds none.
///
/// Vocabulary dumps that passed through XML keep them: BioSyn's MEDIC 2012 file spells
/// "Pick&apos;s disease" and "M&#233;ni&#232;re disease", which would otherwise normalise to
/// "pick apos s disease" and "m 233 ni 232 re disease" and never meet a mention. Only the five
/// XML entities, `&nbsp;` and numeric references to valid characters are read; any other `&`
/// stays as written ("R&D", "&foo;").
pub fn decode_character_references(text: &str) -> Option<String> {
    if !text.contains('&') {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        // The longest reference read is `&#x10FFFF;`: look no further than 10 characters for `;`.
        let decoded = after
            .char_indices()
            .take(10)
            .find(|&(_, c)| c == ';')
            .and_then(|(end, _)| Some((character_reference(&after[..end])?, end)));
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &after[end + 1..];
                changed = true;
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    changed.then_some(out)
}

/// The character a reference's body (between `&` and `;`) names.
fn character_reference(body: &str) -> Option<char> {
    let code = match body {
        "apos" => return Some('\''),
        "quot" => return Some('"'),
        "amp" => return Some('&'),
        "lt" => return Some('<'),
        "gt" => return Some('>'),
        "nbsp" => return Some(' '),
        _ => {
            let number = body.strip_prefix('#')?;
            match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse::<u32>().ok()?,
            }
        }
    };
    char::from_u32(code).filter(|c| !c.is_control() || c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn character_references_are_decoded() {
        let cases = [
            ("Pick&apos;s disease", Some("Pick's disease")),
            ("M&#233;ni&#232;re disease", Some("Ménière disease")),
            ("M&#xE9;ni&#XE8;re", Some("Ménière")),
            (
                "A &amp; B &lt;C&gt; &quot;D&quot;&nbsp;E",
                Some("A & B <C> \"D\" E"),
            ),
            ("&amp;apos;", Some("&apos;")),
            ("no references", None),
            ("R&D and &foo; and & alone", None),
            ("&#0; &#xD800; &#1114112; &#x;", None),
            ("trailing &", None),
            ("&apos", None),
        ];
        for (text, expected) in cases {
            assert_eq!(
                decode_character_references(text).as_deref(),
                expected,
                "{text}"
            );
        }
        assert_eq!(normalize("Pick's disease"), "pick disease");
    }

    #[test]
    fn british_spellings_become_american() {
        let cases = [
            ("oedema", Some("edema")),
            ("pulmonary oedema", Some("pulmonary edema")),
            ("haemorrhagic cystitis", Some("hemorrhagic cystitis")),
            ("iron deficiency anaemia", Some("iron deficiency anemia")),
            (
                "acute lymphoblastic leukaemia",
                Some("acute lymphoblastic leukemia"),
            ),
            ("ischaemic heart disease", Some("ischemic heart disease")),
            ("hypokalaemia", Some("hypokalemia")),
            ("diarrhoea", Some("diarrhea")),
            ("oesophageal tumours", Some("esophageal tumors")),
            ("coeliac disease", Some("celiac disease")),
            ("foetal distress", Some("fetal distress")),
            ("paediatric anaesthesia", Some("pediatric anesthesia")),
            ("orthopaedic", Some("orthopedic")),
            ("septicaemia", Some("septicemia")),
            // American already, or no rule: nothing to add.
            ("edema", None),
            ("hemorrhage", None),
            ("does the shoe fit", None),
            ("aerobic academic", None),
            ("", None),
            ("sjogren syndrome", None),
        ];
        for (input, expected) in cases {
            assert_eq!(american_spelling(input).as_deref(), expected, "{input:?}");
        }
    }

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
