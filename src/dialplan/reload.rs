//! Hot reload: the running plan behind a lock, swapped only when a new set of files loads
//! completely. A bad edit is logged with its `file:line:col` and the running plan stays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::{dir_files, Dialplan, DialplanError};
use crate::file_watch::{Fingerprint, Settle};

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
/// The state of the plan's files.
fn fingerprint(dir: &Path) -> Fingerprint {
    Fingerprint::of(&dir_files(dir).unwrap_or_default())
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
