//! A small seeded random number generator (SplitMix64).
//!
//! Training must be repeatable from a seed and resumable mid-run: the pair order of each
//! epoch and the dropout masks of each step are drawn from generators seeded by
//! `(seed, epoch)` and `(seed, step)`, so a resumed run needs no generator state. candle's
//! CPU generator cannot be seeded at all, and a dependency whose stream may change between
//! releases would break resumption across upgrades; SplitMix64 is ten lines and fixed forever.

/// SplitMix64 (Steele, Lea, Flood 2014): full 64-bit period, passes BigCrush.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// A generator for one `(seed, stream, index)` triple, independent of every other triple.
    pub fn derive(seed: u64, stream: u64, index: u64) -> Self {
        let mut g = SplitMix64::new(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        let mixed = g.next_u64() ^ index.wrapping_mul(0xE703_7ED1_A0B4_28DB);
        SplitMix64::new(mixed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// Uniform in 0..n (n > 0); the modulo bias is below 2^-32 for any n that fits in memory.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_derived_streams_differ() {
        let a: Vec<u64> = (0..4).map(|_| SplitMix64::new(7).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut x = SplitMix64::derive(7, 1, 0);
        let mut y = SplitMix64::derive(7, 1, 1);
        assert_ne!(x.next_u64(), y.next_u64());
        let f = SplitMix64::new(3).next_f32();
        assert!((0.0..1.0).contains(&f));
    }

    /// The stream is pinned: resumed training runs and seeded initialisations depend on every
    /// value. Seed 0 is the published SplitMix64 test vector; the others were computed by an
    /// independent Python transcription of the algorithm.
    #[test]
    fn streams_are_pinned_to_known_values() {
        let mut g = SplitMix64::new(0);
        let zero: Vec<u64> = (0..3).map(|_| g.next_u64()).collect();
        assert_eq!(
            zero,
            [0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, 0x06c45d188009454f]
        );
        let mut g = SplitMix64::new(1_234_567);
        assert_eq!(g.next_u64(), 0x599ed017fb08fc85);
        let mut d = SplitMix64::derive(42, 1, 3);
        assert_eq!(
            [d.next_u64(), d.next_u64()],
            [0xe2af88285cf9ec71, 0x9c7069c450f7cdb2]
        );
        assert_eq!(SplitMix64::new(5).next_f32(), 0.386_768_04);
        let mut items: Vec<u32> = (0..8).collect();
        SplitMix64::new(9).shuffle(&mut items);
        assert_eq!(items, [3, 6, 5, 1, 7, 0, 2, 4]);
    }
}
