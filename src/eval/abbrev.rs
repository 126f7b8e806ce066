//! Abbreviation detection after Schwartz & Hearst (2003), "A simple algorithm for identifying
//! abbreviation definitions in biomedical text".
//!
//! [`find_abbreviations`] finds definitions written `long form (SF)` or `SF (long form)`;
//! [`expansion_map`] turns them into the map linking uses (each short form in both numbers) and
//! [`expand_mention`] links a mention by it: a short form defined in the same text ("WD" ->
//! "Wilson disease"), or a mention holding short forms among its words ("GI AEs" -> "GI adverse
//! experiences"), which helps linking: dictionaries rarely list document-local abbreviations.
//! [`expand_in_document`] is the plain lookup, exact and in the number defined. The risk is the
//! one of any abbreviation expansion: a document that defines "AAs" as amino acids and writes
//! "AA amyloidosis" gets "amino acids amyloidosis".
//!
//! Promises:
//! - never panics, whatever the text (the text is handled as a slice of `char`s);
//! - spans are **character** offsets (not bytes), end exclusive, and the text of each span is
//!   exactly the `short` / `long` field;
//! - the output is deterministic and in text order.
//!
//! The algorithm follows the paper and its reference Java implementation (`ExtractAbbrev`):
//! 1. Every `(` preceded by whitespace opens a candidate; its content runs to the matching `)`
//!    (nesting counted, at most [`MAX_PAREN_CHARS`] characters) and is cut at the first `", "`
//!    or `"; "` ("(WD; OMIM 277900)" -> "WD").
//! 2. If the content has at most two words and is not longer than the text before it, it is the
//!    short form and the long form is searched in the text before the parenthesis, back to the
//!    start of the clause (the last `". "`, `", "` or `"; "`) or the end of the previous
//!    parenthetical, whichever is nearer (the reference implementation discards text it has
//!    processed; we add `"; "` as a clause break). Otherwise the pattern is `SF (long form)`:
//!    the short form is the word before the parenthesis and must hold a capital letter.
//! 3. A short form has 2 to 10 characters, at least one letter, and starts with a letter or
//!    digit.
//! 4. Its letters and digits are matched right to left, case-insensitively, against the long
//!    form candidate, each at the rightmost possible place; the first one must begin a word.
//!    The long form starts at the beginning of the (whitespace-delimited) word holding that
//!    match, so the shortest long form that explains the short form is chosen. A plural
//!    marker (a final lowercase `s` after a capital or digit: "EDDs") is not matched. Before
//!    that, when the initials of the last words of the long form candidate spell the short form,
//!    those words are the long form ("attenuated adenomatous polyposis coli (AAPC)", where
//!    matching letters alone stops at "adenomatous"); a word starts with a letter or digit
//!    after whitespace or a hyphen.
//! 5. A long form is rejected when it is shorter than the short form, contains the short form
//!    as a word prefix (`"SF "`) or ends with it, or has more than `min(|SF| + 5, 2 |SF|)` words
//!    (words split at whitespace and hyphens; `|SF|` counts the letters and digits of the short
//!    form).
//!
//! Authors define a short form in one number and use it in both ("ventricular septal defects
//! (VSDs)" ... "VSD was noted"): [`expansion_map`] holds each under its other number too.
//!
//! When a parenthetical yields no definition, parentheses nested inside it are tried in turn
//! ("(see hereditary hemochromatosis (HH))"), their long form confined to the outer parenthesis.

use std::collections::BTreeMap;

use serde::Serialize;

/// A parenthesised content longer than this (in characters) is not a definition; this also
/// bounds the work per `(` on text with unbalanced parentheses.
pub const MAX_PAREN_CHARS: usize = 200;

/// Short-form length bounds of the paper, in characters.
const MIN_SHORT_CHARS: usize = 2;
const MAX_SHORT_CHARS: usize = 10;

/// One abbreviation definition found in a text. Serialized in evaluation reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Abbreviation {
    /// The short form as written ("WD").
    pub short: String,
    /// The long form as written ("Wilson disease").
    pub long: String,
    /// Character offsets of `short` in the text, end exclusive.
    pub short_span: (usize, usize),
    /// Character offsets of `long` in the text, end exclusive.
    pub long_span: (usize, usize),
}

/// Every abbreviation definition in `text`, in text order. A short form defined twice is
/// reported twice.
pub fn find_abbreviations(text: &str) -> Vec<Abbreviation> {
    let chars: Vec<char> = text.chars().collect();
    let mut found = Vec::new();
    scan(&chars, 0, chars.len(), 0, &mut found);
    found
}

/// The long form of `mention` when it is a short form defined in `text` (exact, case-sensitive
/// match of the whole mention); the first definition wins.
pub fn expand_in_document(text: &str, mention: &str) -> Option<String> {
    find_abbreviations(text)
        .into_iter()
        .find(|a| a.short == mention)
        .map(|a| a.long)
}

/// Short form -> long form for every definition in `text`, the first definition of each short
/// form winning. Cheaper than calling [`expand_in_document`] once per mention of a document.
pub fn abbreviation_map(text: &str) -> BTreeMap<String, String> {
    first_definitions(&find_abbreviations(text))
}

fn first_definitions(definitions: &[Abbreviation]) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for a in definitions {
        map.entry(a.short.clone()).or_insert_with(|| a.long.clone());
    }
    map
}

/// [`abbreviation_map`] without the definitions [`plausible_expansion`] rejects, each short
/// form also under its other number ([`other_number`]: "VSDs" defined, "VSD" used): the map the
/// linker expands mentions with (`eval link --abbreviations`, the BioSyn protocol, and
/// `medlink link` requests that carry a `context`).
pub fn expansion_map(text: &str) -> BTreeMap<String, String> {
    expansion_map_of(&find_abbreviations(text))
}

/// [`expansion_map`] of the definitions [`find_abbreviations`] already found in a text.
pub fn expansion_map_of(definitions: &[Abbreviation]) -> BTreeMap<String, String> {
    let mut map = first_definitions(definitions);
    map.retain(|short, long| plausible_expansion(short, long));
    let variants: Vec<(String, String)> = map
        .iter()
        .filter_map(|(short, long)| Some((other_number(short)?, long.clone())))
        .collect();
    for (variant, long) in variants {
        // A form defined in its own right keeps its own definition, and a long form holding
        // the variant as a word would expand into itself.
        if !long.split_whitespace().any(|word| word == variant) {
            map.entry(variant).or_insert(long);
        }
    }
    map
}

/// The text to link for `mention` given its document's [`expansion_map`]: the long form of a
/// mention that is a short form; for a longer mention, the short forms among its words
/// replaced by their long forms as the BioSyn protocol does ([`super::biosyn::expand_tokens`]:
/// "GI AEs" -> "GI adverse experiences"); `None` when nothing is expanded. A long form's last
/// word that the mention repeats after the short form is said once: "HPT-JT syndrome" with
/// "hyperparathyroidism-jaw tumor syndrome (HPT-JT)" reads "hyperparathyroidism-jaw tumor
/// syndrome", not "... syndrome syndrome".
pub fn expand_mention(map: &BTreeMap<String, String>, mention: &str) -> Option<String> {
    let mention = mention.trim();
    if let Some(long) = map.get(mention) {
        return Some(long.clone());
    }
    if map.is_empty() || mention.is_empty() {
        return None;
    }
    let expanded = super::biosyn::expand_tokens(mention, map);
    let unchanged = expanded.split(' ').eq(mention.split_whitespace());
    (!unchanged).then(|| drop_repeated_words(&expanded))
}

/// `expanded` without a word that repeats the word before it ("syndrome syndrome", "disease
/// diseases": the later, the mention's own, is kept).
fn drop_repeated_words(expanded: &str) -> String {
    let same = |a: &str, b: &str| {
        let (a, b) = (a.to_lowercase(), b.to_lowercase());
        a == b || a.strip_suffix('s') == Some(&b) || b.strip_suffix('s') == Some(&a)
    };
    let mut words: Vec<&str> = Vec::new();
    for word in expanded.split(' ') {
        match words.last_mut() {
            Some(last) if same(last, word) => *last = word,
            _ => words.push(word),
        }
    }
    words.join(" ")
}

/// Whether `short` ends in a plural marker: a lowercase `s` after a capital or digit ("VSDs",
/// "AEs", "5-HTs"), not a short form spelled with a final lowercase letter ("Ms", "Hs" are
/// too short to tell).
fn plural_marker(short: &[char]) -> bool {
    let before = short.len().wrapping_sub(2);
    short.len() >= 3
        && short.last() == Some(&'s')
        && (short[before].is_uppercase() || short[before].is_ascii_digit())
}

/// The short form in the other grammatical number: "VSDs" -> "VSD", "VSD" -> "VSDs". Authors
/// define one and use both ("ventricular septal defects (VSDs)" ... "VSD was noted"). `None`
/// for a form that does not end in a capital or digit (or its plural marker).
pub fn other_number(short: &str) -> Option<String> {
    let chars: Vec<char> = short.chars().collect();
    if plural_marker(&chars) {
        return Some(chars[..chars.len() - 1].iter().collect());
    }
    let last = *chars.last()?;
    (chars.len() >= 2 && (last.is_uppercase() || last.is_ascii_digit()))
        .then(|| format!("{short}s"))
}

/// Schwartz–Hearst can return a whole clause or a string barely longer than the short form
/// ("A-T" -> "ATM"); such expansions are not used for linking: the long form must be more
/// than two characters longer than the short form and at most eight words.
pub fn plausible_expansion(short: &str, long: &str) -> bool {
    long.chars().count() > short.chars().count() + 2 && long.split_whitespace().count() <= 8
}

/// Scans `chars[from..to]` for parentheticals; no long form reaches back before `floor`.
fn scan(chars: &[char], from: usize, to: usize, mut floor: usize, found: &mut Vec<Abbreviation>) {
    let mut i = from;
    while i < to {
        let opens = chars[i] == '(' && i > from && chars[i - 1].is_whitespace();
        if !opens {
            i += 1;
            continue;
        }
        let Some(close) = matching_close(chars, i, to) else {
            // An unclosed parenthesis: nothing to take from it, but keep scanning inside.
            i += 1;
            continue;
        };
        match candidate(chars, floor, i, close) {
            Some(abbreviation) => found.push(abbreviation),
            // Depth is bounded: each nesting level costs two of at most MAX_PAREN_CHARS chars.
            None => scan(chars, i + 1, close, i + 1, found),
        }
        floor = close + 1;
        i = close + 1;
    }
}

/// The index of the `)` closing the `(` at `open`, if it lies before `to` and within
/// [`MAX_PAREN_CHARS`] characters.
fn matching_close(chars: &[char], open: usize, to: usize) -> Option<usize> {
    let limit = to.min(open + 1 + MAX_PAREN_CHARS + 1);
    let mut depth = 0usize;
    for (j, &c) in chars.iter().enumerate().take(limit).skip(open) {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
    }
    None
}

/// Tries the parenthetical `chars[open..=close]`, with long forms starting no earlier than
/// `floor`.
fn candidate(chars: &[char], floor: usize, open: usize, close: usize) -> Option<Abbreviation> {
    // Content, cut at the first ", " or "; " and trimmed.
    let mut content_end = close;
    for j in open + 1..close.saturating_sub(1) {
        if matches!(chars[j], ',' | ';') && chars[j + 1] == ' ' {
            content_end = j;
            break;
        }
    }
    let content = trim(chars, open + 1, content_end);

    // The text before the parenthesis, back to the start of its clause.
    let mut window_start = floor;
    for j in (floor..open.saturating_sub(1)).rev() {
        if matches!(chars[j], '.' | ',' | ';') && chars[j + 1].is_whitespace() {
            window_start = j + 1;
            break;
        }
    }
    let window = trim(chars, window_start, open);
    if len(content) < 2 || len(window) < 2 {
        return None;
    }

    let content_words = chars[content.0..content.1]
        .split(|c| c.is_whitespace())
        .filter(|w| !w.is_empty())
        .count();
    let (short, long_window) = if content_words > 2 || len(content) > len(window) {
        // `SF (long form)`: the short form is the word just before the parenthesis.
        let word_end = window.1;
        let word_start = chars[window.0..word_end]
            .iter()
            .rposition(|c| c.is_whitespace())
            .map_or(window.0, |p| window.0 + p + 1);
        let short = (word_start, word_end);
        // The reference implementation demands a capital here: a plain word before a long
        // parenthetical ("significant (p < 0.05)") is almost never an abbreviation.
        if !chars[short.0..short.1].iter().any(|c| c.is_uppercase()) {
            return None;
        }
        (short, content)
    } else {
        (content, window)
    };

    let sf = &chars[short.0..short.1];
    if !valid_short_form(sf) {
        return None;
    }
    let long_start = long_window.0 + best_long_form(sf, &chars[long_window.0..long_window.1])?;
    let long = (long_start, long_window.1);
    if !acceptable(sf, &chars[long.0..long.1]) {
        return None;
    }
    Some(Abbreviation {
        short: sf.iter().collect(),
        long: chars[long.0..long.1].iter().collect(),
        short_span: short,
        long_span: long,
    })
}

fn valid_short_form(sf: &[char]) -> bool {
    (MIN_SHORT_CHARS..=MAX_SHORT_CHARS).contains(&sf.len())
        && sf.iter().any(|c| c.is_alphabetic())
        && sf.first().is_some_and(|c| c.is_alphanumeric())
}

/// The offset within `lf` where the shortest long form explaining `sf` starts (step 4). A
/// plural marker is not matched ("excited delirium (EDDs)": the long form need not hold an
/// `s`).
fn best_long_form(sf: &[char], lf: &[char]) -> Option<usize> {
    let sf = if plural_marker(sf) {
        &sf[..sf.len() - 1]
    } else {
        sf
    };
    if let Some(start) = initials_long_form(sf, lf) {
        return Some(start);
    }
    // `next` is one past the position still open for matching; matching goes right to left.
    let mut next = lf.len();
    let mut first_match = None;
    for (s, &sc) in sf.iter().enumerate().rev() {
        if !sc.is_alphanumeric() {
            continue;
        }
        let want = fold(sc);
        let at = (0..next)
            .rev()
            .find(|&l| fold(lf[l]) == want && (s != 0 || l == 0 || !lf[l - 1].is_alphanumeric()))?;
        first_match = Some(at);
        next = at;
    }
    Some(word_start(lf, first_match?))
}

/// The long form whose words' initials spell the short form, when the last words before the
/// parenthesis do ("attenuated adenomatous polyposis coli (AAPC)"): character matching alone
/// takes the `a` inside "adenomatous" for the second A and stops one word short. Words are cut
/// at whitespace and hyphens, as step 5 counts them ("non-polyposis" gives N and P).
fn initials_long_form(sf: &[char], lf: &[char]) -> Option<usize> {
    let letters: Vec<char> = sf
        .iter()
        .filter(|c| c.is_alphanumeric())
        .map(|&c| fold(c))
        .collect();
    let starts: Vec<usize> = (0..lf.len())
        .filter(|&l| {
            lf[l].is_alphanumeric() && (l == 0 || lf[l - 1].is_whitespace() || lf[l - 1] == '-')
        })
        .collect();
    if letters.len() < 2 || starts.len() < letters.len() {
        return None;
    }
    let last = &starts[starts.len() - letters.len()..];
    let spelled = last.iter().zip(&letters).all(|(&l, &c)| fold(lf[l]) == c);
    spelled.then(|| word_start(lf, last[0]))
}

/// The start of the whitespace-delimited word of `lf` that holds position `at`.
fn word_start(lf: &[char], at: usize) -> usize {
    lf[..at]
        .iter()
        .rposition(|c| c.is_whitespace())
        .map_or(0, |p| p + 1)
}

/// Step 5: the checks on a matched long form, made for the short form with and without a
/// plural marker ("HCMV strains (HCMVs)" holds its own short form).
fn acceptable(sf: &[char], lf: &[char]) -> bool {
    let singular = if plural_marker(sf) {
        &sf[..sf.len() - 1]
    } else {
        sf
    };
    if lf.len() < sf.len() {
        return false;
    }
    for form in [sf, singular] {
        let contains_word = lf
            .windows(form.len() + 1)
            .any(|w| w[..form.len()] == *form && w[form.len()] == ' ');
        if lf.ends_with(form) || contains_word {
            return false;
        }
    }
    let sf_size = sf.iter().filter(|c| c.is_alphanumeric()).count();
    let lf_words = lf
        .split(|&c| c.is_whitespace() || c == '-')
        .filter(|w| !w.is_empty())
        .count();
    lf_words <= (sf_size + 5).min(sf_size * 2)
}

/// Case folding for matching one character against another; multi-char lowercase forms
/// ("İ" -> "i̇") keep their first character, which is what a one-to-one match can use.
fn fold(c: char) -> char {
    c.to_lowercase().next().unwrap_or(c)
}

/// `(start, end)` with surrounding whitespace removed.
fn trim(chars: &[char], mut start: usize, mut end: usize) -> (usize, usize) {
    while start < end && chars[start].is_whitespace() {
        start += 1;
    }
    while end > start && chars[end - 1].is_whitespace() {
        end -= 1;
    }
    (start, end)
}

fn len(span: (usize, usize)) -> usize {
    span.1 - span.0
}
