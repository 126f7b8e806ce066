//! Data parallelism over a few worker threads, for encoder passes.
//!
//! candle's CPU thread pool splits every op across threads and spins at a barrier after each
//! one; for BERT-sized ops on two cores that overhead ate the second core's gain (training
//! step 2.7 s with two candle threads vs 2.2 s with one, and far worse on a busy machine).
//! medlink's commands run candle single-threaded ([`single_threaded_candle`]) and give each
//! worker thread whole batches instead.

use crate::error::Result;

/// Worker threads to use: `requested`, or one per CPU when 0.
pub fn threads(requested: usize) -> usize {
    match requested {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// Makes candle run each op on the calling thread, unless the user set its thread count.
/// Must run before candle's first op (the command line calls it at start-up).
pub fn single_threaded_candle() {
    for var in ["CANDLE_NUM_THREADS", "RAYON_NUM_THREADS"] {
        if std::env::var_os(var).is_none() {
            std::env::set_var(var, "1");
        }
    }
}

/// `f(0..n)` on up to `threads` scoped threads (items taken in turn from a shared counter),
/// results in item order. One thread runs inline.
pub fn parallel_map<T: Send>(
    n: usize,
    threads: usize,
    f: impl Fn(usize) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    if threads <= 1 || n <= 1 {
        return (0..n).map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<T>>>> = Mutex::new((0..n).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads.min(n) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let r = f(i);
                results.lock().expect("results lock")[i] = Some(r);
            });
        }
    });
    results
        .into_inner()
        .expect("results lock")
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect()
}

/// [`parallel_map`] taking the costliest items first (by `cost`), results still in item
/// order. Threads take items as they free up, so starting with the largest keeps one thread
/// from being left with the largest item at the end while the other idles: length-sorted
/// training groups started with the cheapest and ended with the dearest.
pub fn parallel_map_costliest_first<T: Send>(
    cost: &[usize],
    threads: usize,
    f: impl Fn(usize) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let mut schedule: Vec<usize> = (0..cost.len()).collect();
    // Stable: equal costs keep item order.
    schedule.sort_by_key(|&i| std::cmp::Reverse(cost[i]));
    let done = parallel_map(schedule.len(), threads, |slot| f(schedule[slot]))?;
    let mut results: Vec<Option<T>> = (0..cost.len()).map(|_| None).collect();
    for (slot, result) in done.into_iter().enumerate() {
        results[schedule[slot]] = Some(result);
    }
    Ok(results
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costliest_first_returns_results_in_item_order_and_runs_the_largest_first() {
        let started = std::sync::Mutex::new(Vec::new());
        let cost = [1, 5, 3, 5, 2];
        let out = parallel_map_costliest_first(&cost, 1, |i| {
            started.lock().unwrap().push(i);
            Ok(i * 10)
        })
        .unwrap();
        assert_eq!(out, [0, 10, 20, 30, 40]);
        assert_eq!(started.into_inner().unwrap(), [1, 3, 2, 4, 0]);
        let two = parallel_map_costliest_first(&cost, 2, |i| Ok(i * 10)).unwrap();
        assert_eq!(two, out);
    }
}
