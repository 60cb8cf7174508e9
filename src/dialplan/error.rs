//! Dialplan load errors: every message names `file:line:col`, and a set of files loads all or
//! nothing.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem found while loading a dialplan file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, as it was given (or found in the directory).
    pub file: PathBuf,
    /// 1-based line; 0 when the problem has no position (the file cannot be read).
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// What is wrong.
    pub message: String,
}

impl Diagnostic {
    /// A problem at byte offset `span.start` of `src`.
    pub(crate) fn at(
        file: &Path,
        src: &str,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> Self {
        let (line, col) = line_col(src, span.start);
        Self {
            file: file.to_path_buf(),
            line,
            col,
            message: message.into(),
        }
    }

    /// A problem with the whole file (unreadable, ...).
    pub(crate) fn file(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            line: 0,
            col: 0,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.col,
                self.message
            )
        }
    }
}

/// Converts a byte offset into a 1-based line and a 1-based column counted in characters.
pub(crate) fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(src.len());
    while !src.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// The dialplan files could not be loaded; the running plan (if any) stays in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialplanError {
    /// Every problem found, in file order then position order. Never empty.
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for DialplanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DialplanError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_from_offsets() {
        let src = "ab\ncdé\nf";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 1), (1, 2));
        assert_eq!(line_col(src, 3), (2, 1));
        assert_eq!(line_col(src, 7), (2, 4)); // after 'é' (2 bytes)
        assert_eq!(line_col(src, 6), (2, 3)); // inside 'é': back to its start
        assert_eq!(line_col(src, 99), (3, 2));
    }
}
