//! A bounded cache of recent results, for mentions that recur in a stream ("hypertension" in
//! every other note).
//!
//! Two generations, not an LRU list: entries go into the current map; when it holds half the
//! capacity it becomes the previous one and the old previous is dropped; a hit in the previous
//! generation moves the entry forward. Recently used entries survive, memory stays between
//! half and all of the capacity, and every operation is one or two hash lookups under one
//! short lock. Keys are the caller's (for the linker: the options and the mention's text).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

struct Generations<V> {
    current: HashMap<String, V>,
    previous: HashMap<String, V>,
}

/// Holds at most `capacity` entries (a capacity of 0 holds none).
pub struct RecentCache<V> {
    capacity: usize,
    generations: Mutex<Generations<V>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl<V: Clone> RecentCache<V> {
    pub fn new(capacity: usize) -> Self {
        RecentCache {
            capacity,
            generations: Mutex::new(Generations {
                current: HashMap::new(),
                previous: HashMap::new(),
            }),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn get(&self, key: &str) -> Option<V> {
        let mut g = self.lock();
        let found = match g.current.get(key) {
            Some(v) => Some(v.clone()),
            None => g
                .previous
                .remove(key)
                .inspect(|v| self.insert_locked(&mut g, key.to_string(), v.clone())),
        };
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    pub fn put(&self, key: String, value: V) {
        if self.capacity == 0 {
            return;
        }
        let mut g = self.lock();
        self.insert_locked(&mut g, key, value);
    }

    fn insert_locked(&self, g: &mut Generations<V>, key: String, value: V) {
        g.current.insert(key, value);
        if g.current.len() >= self.capacity.div_ceil(2) {
            g.previous = std::mem::take(&mut g.current);
        }
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        let g = self.lock();
        g.current.len() + g.previous.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lookups answered and not answered since creation.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations<V>> {
        // A panic elsewhere cannot leave the maps half-updated in a harmful way: keep serving.
        self.generations
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_entries_survive_and_memory_is_bounded() {
        let cache = RecentCache::new(4);
        for i in 0..100 {
            cache.put(format!("k{i}"), i);
            assert!(cache.len() <= 4, "{} entries", cache.len());
            // k0 is read after every insertion: it is never evicted.
            if i > 0 {
                assert_eq!(cache.get("k0"), Some(0));
            } else {
                cache.get("k0");
            }
        }
        assert_eq!(cache.get("k1"), None);
        assert_eq!(cache.get("k99"), Some(99));
        let (hits, misses) = cache.stats();
        assert_eq!((hits, misses), (101, 1));
        let none: RecentCache<u32> = RecentCache::new(0);
        none.put("a".into(), 1);
        assert_eq!(none.get("a"), None);
        assert!(none.is_empty());
    }
}
