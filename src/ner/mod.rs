//! The NER stage: finding mention spans in running text.
//!
//! Two detectors share one seam, [`MentionDetector`]: a dictionary matcher over an index's
//! names ([`dictionary`]) and a transformer token classifier (`tagger`, Hugging Face
//! `BertForTokenClassification` / `RobertaForTokenClassification` layout). The annotate pipeline ([`annotate`]) runs a detector,
//! expands abbreviations defined in the document and links every mention with the
//! [`crate::linker::Linker`].
//!
//! Offsets are always **character** offsets (Unicode scalar values) into the text as given,
//! end exclusive — what PubTator, brat and Python's `str` slicing count — never byte offsets.

pub mod aggregate;
pub mod labels;
pub mod tagger;

use serde::Serialize;

pub mod annotate;
pub mod combine;
pub mod dictionary;
pub mod io;

use crate::error::Result;

/// One mention found in a text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mention {
    /// Character offsets into the text, end exclusive.
    pub start: usize,
    pub end: usize,
    /// The covered text, exactly `text[start..end]` in characters.
    pub text: String,
    /// Entity type: the tagger's label group (`Disease`, `Chemical`, ...) or, for the
    /// dictionary matcher, the index's source or concept type it was told to report.
    pub entity_type: String,
    /// Detector confidence in 0..=1 (the dictionary matcher reports 1).
    pub score: f32,
    /// Ids of the concepts whose name the detector matched (dictionary matcher); empty when
    /// the detector does not know (a tagger). The annotate pipeline ranks these first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub concepts: Vec<String>,
}

/// Finds mention spans in texts. Implementations are synchronous and batch-first: the
/// annotate pipeline hands them many documents at once so a model can batch across them.
pub trait MentionDetector: Send + Sync {
    /// Mentions of each text, sorted by start, non-overlapping unless the detector says so.
    fn detect_batch(&self, texts: &[&str]) -> Result<Vec<Vec<Mention>>>;

    fn detect(&self, text: &str) -> Result<Vec<Mention>> {
        Ok(self.detect_batch(&[text])?.pop().unwrap_or_default())
    }
}

/// Character offset -> byte offset table for one text, so detectors working on bytes
/// (tokenizers, Aho-Corasick) can report character offsets in O(1).
pub struct CharOffsets {
    /// `byte_to_char[b]` is the character index of the character starting at byte `b`, and
    /// `byte_to_char[len]` the character count; bytes inside a character map to the
    /// character they belong to.
    byte_to_char: Vec<u32>,
}

impl CharOffsets {
    pub fn new(text: &str) -> Self {
        let mut byte_to_char = vec![0u32; text.len() + 1];
        let mut chars = 0u32;
        for (b, c) in text.char_indices() {
            for slot in &mut byte_to_char[b..b + c.len_utf8()] {
                *slot = chars;
            }
            chars += 1;
        }
        byte_to_char[text.len()] = chars;
        CharOffsets { byte_to_char }
    }

    /// Character index of the character containing byte `byte` (or the count at the end).
    pub fn char_at(&self, byte: usize) -> usize {
        self.byte_to_char[byte.min(self.byte_to_char.len() - 1)] as usize
    }

    /// Characters in the text.
    pub fn len(&self) -> usize {
        *self.byte_to_char.last().unwrap_or(&0) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The characters `start..end` of `text` (character offsets).
pub fn char_slice(text: &str, start: usize, end: usize) -> &str {
    let mut indices = text.char_indices().map(|(b, _)| b).chain([text.len()]);
    let from = indices.nth(start).unwrap_or(text.len());
    let to = if end > start {
        indices.nth(end - start - 1).unwrap_or(text.len())
    } else {
        from
    };
    &text[from..to]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_offsets_count_characters_not_bytes() {
        let text = "Ä big héad";
        let offsets = CharOffsets::new(text);
        assert_eq!(offsets.len(), 10);
        assert_eq!(offsets.char_at(0), 0);
        assert_eq!(offsets.char_at(1), 0); // inside Ä
        assert_eq!(offsets.char_at(2), 1);
        assert_eq!(offsets.char_at(text.len()), 10);
        assert_eq!(char_slice(text, 2, 5), "big");
        assert_eq!(char_slice(text, 6, 10), "héad");
        assert_eq!(char_slice(text, 3, 3), "");
    }
}
