//! The Prometheus text exposition format (version 0.0.4), which `/metrics` serves: each metrics
//! module appends its families through these, so the format is written in one place.

use std::fmt::{Display, Write};

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (until the process restarts).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Cumulative `_bucket{le=…}` samples with `_sum` and `_count`.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Starts a family: its `# HELP` and `# TYPE` lines. Its samples follow.
pub fn family(out: &mut String, name: &str, help: &str, kind: Kind) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {}", kind.as_str());
}

/// One sample of the current family: `name value`, or `name{label="value"} value`.
pub fn sample(out: &mut String, name: &str, label: Option<(&str, &str)>, value: impl Display) {
    match label {
        None => {
            let _ = writeln!(out, "{name} {value}");
        }
        Some((key, v)) => {
            let _ = writeln!(out, "{name}{{{key}=\"{}\"}} {value}", escape_label(v));
        }
    }
}

/// A family with one unlabelled sample.
pub fn single(out: &mut String, name: &str, help: &str, kind: Kind, value: impl Display) {
    family(out, name, help, kind);
    sample(out, name, None, value);
}

/// HELP text: backslash and line feed escaped.
fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A label value: backslash, double quote and line feed escaped.
fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_samples_in_the_text_format() {
        let mut out = String::new();
        single(&mut out, "x_ready", "1 when serving.", Kind::Gauge, 1);
        family(&mut out, "x_total", "Things, by kind.", Kind::Counter);
        sample(&mut out, "x_total", Some(("kind", "a")), 3);
        sample(&mut out, "x_total", Some(("kind", "say \"hi\"\\\n")), 0.5);
        assert_eq!(
            out,
            "# HELP x_ready 1 when serving.\n# TYPE x_ready gauge\nx_ready 1\n\
             # HELP x_total Things, by kind.\n# TYPE x_total counter\n\
             x_total{kind=\"a\"} 3\nx_total{kind=\"say \\\"hi\\\"\\\\\\n\"} 0.5\n"
        );
    }

    #[test]
    fn help_text_stays_on_its_line() {
        let mut out = String::new();
        family(&mut out, "y", "two\nlines \\ here", Kind::Histogram);
        assert_eq!(out, "# HELP y two\\nlines \\\\ here\n# TYPE y histogram\n");
    }
}
