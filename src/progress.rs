//! Progress reporting for long library work (embedding names, building graphs), rendered by the
//! CLI with indicatif and ignored elsewhere. The library never prints.

/// Receives progress of a long operation made of named stages.
pub trait Progress: Send + Sync {
    /// A new stage of `total` units begins (0 when unknown).
    fn stage(&self, name: &str, total: u64);
    fn advance(&self, units: u64);
    fn finish_stage(&self);
}

/// Discards progress.
pub struct NoProgress;

impl Progress for NoProgress {
    fn stage(&self, _name: &str, _total: u64) {}
    fn advance(&self, _units: u64) {}
    fn finish_stage(&self) {}
}
