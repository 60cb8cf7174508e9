//! Hot reload logs: `info` with the rule count, `error` with `file:line:col`. Its own test
//! binary, because it installs the global log subscriber.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jonction::dialplan::reload::{watch, DialplanHandle};
use jonction::dialplan::Dialplan;

/// Collects what the subscriber writes.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(b);
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn line_with(&self, needle: &str) -> Option<String> {
        let v = self.0.lock().ok()?;
        String::from_utf8_lossy(&v)
            .lines()
            .find(|l| l.contains(needle))
            .map(str::to_string)
    }

    /// Waits (bounded) for a line containing `needle`.
    async fn wait_for(&self, needle: &str) -> String {
        for _ in 0..250 {
            if let Some(l) = self.line_with(needle) {
                return l;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no log line with {needle:?}");
    }
}

const RULE: &str = "[[rule]]\nname = \"NAME\"\naction = { type = \"room\", room = \"NAME\" }\n";

#[tokio::test]
async fn reloads_and_refusals_are_logged() {
    let logs = Logs::default();
    let sink = logs.clone();
    tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .init();

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_path_buf();
    std::fs::write(path.join("10.toml"), RULE.replace("NAME", "a")).expect("write");
    let h = DialplanHandle::new(Dialplan::load_dir(&path).expect("loads"));
    let task = tokio::spawn(watch(path.clone(), Duration::from_millis(10), h.clone()));

    let two = format!("{}{}", RULE.replace("NAME", "b"), RULE.replace("NAME", "c"));
    std::fs::write(path.join("20.toml"), two).expect("write");
    let line = logs.wait_for("dialplan reloaded").await;
    assert!(
        line.contains(" INFO ") && line.contains("rules=3"),
        "{line}"
    );
    assert_eq!(h.current().rule_count(), 3);

    let broken =
        "[[rule]]\nname = 'b'\nmatch.called = '('\naction = { type = 'reject', code = 403 }\n";
    std::fs::write(path.join("20.toml"), broken).expect("write");
    let line = logs.wait_for("previous plan kept").await;
    assert!(line.contains(" ERROR "), "{line}");
    assert!(line.contains("20.toml:3:16: bad regex \"(\""), "{line}");
    assert_eq!(h.current().rule_count(), 3);
    task.abort();
}
