//! Warnings about input that was read with a tolerated quirk.

/// How many warnings a statement keeps; a file with the same quirk on every line must not grow without bound.
const MAX_WARNINGS: usize = 100;

/// Collects warnings, keeping the first [`MAX_WARNINGS`] and counting the rest.
#[derive(Debug, Default)]
pub(crate) struct Warnings {
    kept: Vec<String>,
    dropped: usize,
}

impl Warnings {
    /// Records a warning.
    pub(crate) fn push(&mut self, warning: impl Into<String>) {
        if self.kept.len() < MAX_WARNINGS {
            self.kept.push(warning.into());
        } else {
            self.dropped += 1;
        }
    }

    /// The warnings, with a last line saying how many more there were.
    pub(crate) fn finish(mut self) -> Vec<String> {
        if self.dropped > 0 {
            self.kept.push(format!("{} more warnings not shown", self.dropped));
        }
        self.kept
    }
}

impl Warnings {
    /// Adds `other`'s warnings after these.
    pub(crate) fn append(&mut self, other: Warnings) {
        for warning in other.kept {
            self.push(warning);
        }
        self.dropped += other.dropped;
    }
}
