//! Two detectors as one: the mentions of a primary detector (a trained tagger), plus those of
//! a secondary one (the dictionary matcher) that overlap none of them. The tagger decides
//! span boundaries where it found something; the dictionary adds what the tagger missed.

use super::{Mention, MentionDetector};
use crate::error::Result;

pub struct Combined {
    pub primary: Box<dyn MentionDetector>,
    pub secondary: Box<dyn MentionDetector>,
}

impl MentionDetector for Combined {
    fn detect_batch(&self, texts: &[&str]) -> Result<Vec<Vec<Mention>>> {
        let primary = self.primary.detect_batch(texts)?;
        let secondary = self.secondary.detect_batch(texts)?;
        Ok(primary
            .into_iter()
            .zip(secondary)
            .map(|(mut kept, extra)| {
                let added: Vec<Mention> = extra
                    .into_iter()
                    .filter(|m| !kept.iter().any(|k| k.start < m.end && m.start < k.end))
                    .collect();
                kept.extend(added);
                kept.sort_by_key(|m| (m.start, m.end));
                kept
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Vec<(usize, usize)>);

    impl MentionDetector for Fixed {
        fn detect_batch(&self, texts: &[&str]) -> Result<Vec<Vec<Mention>>> {
            Ok(texts
                .iter()
                .map(|_| {
                    self.0
                        .iter()
                        .map(|&(start, end)| Mention {
                            start,
                            end,
                            text: String::new(),
                            entity_type: String::new(),
                            score: 1.0,
                            concepts: Vec::new(),
                        })
                        .collect()
                })
                .collect())
        }
    }

    #[test]
    fn secondary_mentions_fill_only_the_gaps() {
        let both = Combined {
            primary: Box::new(Fixed(vec![(10, 20), (30, 35)])),
            secondary: Box::new(Fixed(vec![(0, 5), (15, 25), (35, 40), (20, 22)])),
        };
        let spans: Vec<(usize, usize)> = both
            .detect("x")
            .unwrap()
            .iter()
            .map(|m| (m.start, m.end))
            .collect();
        assert_eq!(spans, vec![(0, 5), (10, 20), (20, 22), (30, 35), (35, 40)]);
    }
}
