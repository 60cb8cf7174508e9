//! Hot reload: the running plan behind a lock, swapped only when a new set of files loads
//! completely. A bad edit is logged with its `file:line:col` and the running plan stays.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use super::{dir_files, Dialplan, DialplanError};

/// The running dialplan, shared by the call handlers and the watcher. Cloning is cheap.
#[derive(Debug, Clone, Default)]
pub struct DialplanHandle {
    current: Arc<RwLock<Arc<Dialplan>>>,
}

impl DialplanHandle {
    /// A handle holding `plan`.
    pub fn new(plan: Dialplan) -> Self {
        Self {
            current: Arc::new(RwLock::new(Arc::new(plan))),
        }
    }

    /// The plan in force (a cheap `Arc` clone; routing never holds the lock).
    pub fn current(&self) -> Arc<Dialplan> {
        match self.current.read() {
            Ok(g) => Arc::clone(&g),
            // A writer only ever stores a whole Arc: the value is sound even if poisoned.
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    /// Replaces the plan in force.
    pub fn swap(&self, plan: Dialplan) {
        let plan = Arc::new(plan);
        match self.current.write() {
            Ok(mut g) => *g = plan,
            Err(p) => *p.into_inner() = plan,
        }
    }

    /// Loads `dir` now; on success swaps and returns the rule count, otherwise keeps the plan.
    pub fn reload_now(&self, dir: &Path) -> Result<usize, DialplanError> {
        let plan = Dialplan::load_dir(dir)?;
        let n = plan.rule_count();
        self.swap(plan);
        Ok(n)
    }
}

/// What identifies a state of the directory: names, sizes, mtimes and contents of its
/// top-level `*.toml` files (contents too: an edit within one mtime tick is still seen).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint(Vec<(PathBuf, u64, Option<SystemTime>, u64)>);

fn fingerprint(dir: &Path) -> Fingerprint {
    let mut out = Vec::new();
    if let Ok(files) = dir_files(dir) {
        for f in files {
            let meta = std::fs::metadata(&f).ok();
            let size = meta.as_ref().map_or(0, |m| m.len());
            let mtime = meta.and_then(|m| m.modified().ok());
            let mut h = DefaultHasher::new();
            std::fs::read(&f).ok().hash(&mut h);
            out.push((f, size, mtime, h.finish()));
        }
    }
    Fingerprint(out)
}

/// Decides when a change of the directory is complete. A state is applied only once two
/// consecutive polls see it unchanged: an editor or `cp` caught mid-write (a truncated or
/// half-written file) is never loaded, since the next poll sees different contents.
#[derive(Debug)]
struct Settle {
    /// The state last loaded (or refused: a refused state is not retried until it changes).
    applied: Fingerprint,
    /// A new state seen once, waiting for a second identical poll.
    pending: Option<Fingerprint>,
}

impl Settle {
    fn new(applied: Fingerprint) -> Self {
        Self {
            applied,
            pending: None,
        }
    }

    /// Takes one poll's state; true when it is a settled change that should be loaded now.
    fn observe(&mut self, now: Fingerprint) -> bool {
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

/// Polls `dir` every `interval`; once a change has settled (the same on two polls in a row),
/// loads the whole set: valid → swap and `info!`, invalid → keep the running plan and `error!`
/// each problem. Never ends (drop or abort it). The state of the directory is taken when this
/// is called, not when first polled, so that an edit in between counts as a change. An
/// `interval` below 10 ms is taken as 10 ms (`[dialplan] reload_interval = "0s"` means no
/// watcher at all: the caller runs none).
pub fn watch(
    dir: PathBuf,
    interval: Duration,
    handle: DialplanHandle,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut settle = Settle::new(fingerprint(&dir));
    let interval = interval.max(Duration::from_millis(10));
    async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if !settle.observe(fingerprint(&dir)) {
                continue;
            }
            match handle.reload_now(&dir) {
                Ok(rules) => info!(dir = %dir.display(), rules, "dialplan reloaded"),
                Err(e) => {
                    for d in &e.diagnostics {
                        error!(dir = %dir.display(), "dialplan refused, previous plan kept: {d}");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialplan::{Outcome, RouteRequest};

    fn rules(names: &[&str]) -> String {
        names
            .iter()
            .map(|n| {
                format!(
                    "[[rule]]\nname = \"{n}\"\nmatch.called = '{n}'\n\
                     action = {{ type = \"room\", room = \"{n}\" }}\n"
                )
            })
            .collect()
    }

    /// Waits (bounded) until `cond` holds.
    async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
        for _ in 0..250 {
            if cond() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cond()
    }

    #[test]
    fn reload_now_keeps_the_plan_on_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("a.toml"), rules(&["a"])).expect("write");
        let h = DialplanHandle::default();
        assert_eq!(h.current().rule_count(), 0);
        assert_eq!(h.reload_now(dir.path()), Ok(1));
        std::fs::write(dir.path().join("b.toml"), "[[rule]]\nname = 'b'\n").expect("write");
        let e = h.reload_now(dir.path()).expect_err("refused");
        assert!(
            e.to_string().contains("b.toml:1:1: missing field `action`"),
            "{e}"
        );
        assert_eq!(h.current().rule_count(), 1);
    }

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

    #[tokio::test]
    async fn watcher_swaps_valid_sets_and_keeps_the_plan_on_bad_ones() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_path_buf();
        std::fs::write(path.join("10.toml"), rules(&["a"])).expect("write");
        let h = DialplanHandle::new(Dialplan::load_dir(&path).expect("loads"));
        let held = h.current();
        let task = tokio::spawn(watch(path.clone(), Duration::from_millis(10), h.clone()));

        // A new file: picked up.
        std::fs::write(path.join("20.toml"), rules(&["b", "c"])).expect("write");
        assert!(eventually(|| h.current().rule_count() == 3).await);
        let r = h.current().route(&RouteRequest::sip("sip:c@x", ""));
        assert!(
            matches!(r.outcome, Outcome::Room(ref t) if t.room == "c"),
            "{r:?}"
        );
        // A plan taken before the swap is unchanged (Arc, immutable).
        assert_eq!(held.rule_count(), 1);

        // A broken edit: refused, the running plan stays.
        std::fs::write(
            path.join("20.toml"),
            "[[rule]]\nname = 'b'\nmatch.called = '('\n",
        )
        .expect("write");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(h.current().rule_count(), 3);

        // Fixed (same size as before would not matter: contents are hashed): picked up.
        std::fs::write(path.join("20.toml"), rules(&["d"])).expect("write");
        assert!(eventually(|| h.current().rule_count() == 2).await);

        // A removed file: picked up.
        std::fs::remove_file(path.join("20.toml")).expect("remove");
        assert!(eventually(|| h.current().rule_count() == 1).await);
        task.abort();
    }

    #[tokio::test]
    async fn an_edit_before_the_first_poll_counts() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_path_buf();
        std::fs::write(path.join("10.toml"), rules(&["a"])).expect("write");
        let h = DialplanHandle::new(Dialplan::load_dir(&path).expect("loads"));
        let watcher = watch(path.clone(), Duration::from_millis(10), h.clone());
        std::fs::write(path.join("20.toml"), rules(&["b"])).expect("write");
        let task = tokio::spawn(watcher);
        assert!(eventually(|| h.current().rule_count() == 2).await);
        task.abort();
    }

    #[tokio::test]
    async fn zero_interval_does_not_panic_and_a_missing_dir_keeps_the_plan() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("plans");
        std::fs::create_dir(&path).expect("mkdir");
        std::fs::write(path.join("10.toml"), rules(&["a", "b"])).expect("write");
        let h = DialplanHandle::new(Dialplan::load_dir(&path).expect("loads"));
        let task = tokio::spawn(watch(path.clone(), Duration::ZERO, h.clone()));
        std::fs::remove_dir_all(&path).expect("remove");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!task.is_finished(), "the watcher keeps running");
        assert_eq!(h.current().rule_count(), 2);
        std::fs::create_dir(&path).expect("mkdir");
        std::fs::write(path.join("10.toml"), rules(&["c"])).expect("write");
        assert!(eventually(|| h.current().rule_count() == 1).await);
        task.abort();
    }
}
