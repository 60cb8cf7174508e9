//! Noticing that configuration files changed, for the hot reloads (dialplans, the SIP TLS
//! certificate): a [`Fingerprint`] of a set of files, and [`Settle`], which reports a change
//! only once it is complete.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::time::SystemTime;

/// The state of a set of files: name, size, modification time and a hash of the contents of
/// each (a missing or unreadable file counts as a state too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(Vec<(PathBuf, u64, Option<SystemTime>, u64)>);

impl Fingerprint {
    /// The state of `files` now.
    pub fn of(files: &[PathBuf]) -> Self {
        let mut out = Vec::new();
        for f in files {
            let meta = std::fs::metadata(f).ok();
            let size = meta.as_ref().map_or(0, |m| m.len());
            let mtime = meta.and_then(|m| m.modified().ok());
            let mut h = DefaultHasher::new();
            std::fs::read(f).ok().hash(&mut h);
            out.push((f.clone(), size, mtime, h.finish()));
        }
        Self(out)
    }
}

/// Decides when a change of the files is complete. A state is applied only once two
/// consecutive polls see it unchanged: an editor, `cp` or a certificate renewal caught
/// mid-write (a truncated or half-written file, a new certificate with the old key) is never
/// loaded, since the next poll sees different contents.
#[derive(Debug)]
pub struct Settle {
    /// The state last loaded (or refused: a refused state is not retried until it changes).
    applied: Fingerprint,
    /// A new state seen once, waiting for a second identical poll.
    pending: Option<Fingerprint>,
}

impl Settle {
    /// Starts from the state `applied` (the one in force).
    pub fn new(applied: Fingerprint) -> Self {
        Self {
            applied,
            pending: None,
        }
    }

    /// Takes one poll's state; true when it is a settled change that should be loaded now.
    pub fn observe(&mut self, now: Fingerprint) -> bool {
        if now == self.applied {
            self.pending = None;
            return false;
        }
        if self.pending.as_ref() == Some(&now) {
            self.applied = now;
            self.pending = None;
            return true;
        }
        self.pending = Some(now);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(contents: &[&str]) -> Fingerprint {
        Fingerprint(
            contents
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let mut h = DefaultHasher::new();
                    c.hash(&mut h);
                    (
                        PathBuf::from(format!("{i}.toml")),
                        c.len() as u64,
                        None,
                        h.finish(),
                    )
                })
                .collect(),
        )
    }

    #[test]
    fn a_file_caught_mid_write_is_not_loaded() {
        let mut s = Settle::new(state(&["old"]));
        assert!(!s.observe(state(&["old"])), "no change");
        // The writer truncated the file, then wrote it in two steps, one per poll.
        assert!(!s.observe(state(&[""])));
        assert!(!s.observe(state(&["new ru"])));
        assert!(!s.observe(state(&["new rules"])));
        // Unchanged on a second poll: settled, loaded once.
        assert!(s.observe(state(&["new rules"])));
        assert!(!s.observe(state(&["new rules"])));
        // A change undone before it settled is no change.
        assert!(!s.observe(state(&["", "x"])));
        assert!(!s.observe(state(&["new rules"])));
        assert!(!s.observe(state(&["new rules"])));
        // A new file settles the same way.
        assert!(!s.observe(state(&["new rules", "more"])));
        assert!(s.observe(state(&["new rules", "more"])));
    }
}
