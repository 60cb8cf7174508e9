//! Templates (`"tel-{number}"`): literal text and `{name}` variables, checked when the plan is
//! loaded so that routing never meets an unknown name. `{{` and `}}` are literal braces.

use std::collections::BTreeMap;

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var(String),
}

impl Template {
    /// Parses `src`; the error says what is wrong.
    pub(crate) fn parse(src: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = src.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    lit.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) if c.is_ascii_alphanumeric() || c == '_' => name.push(c),
                            Some(c) => {
                                return Err(format!(
                                    "template {src:?}: unexpected {c:?} in a variable name"
                                ))
                            }
                            None => return Err(format!("template {src:?}: unclosed '{{'")),
                        }
                    }
                    if name.is_empty() {
                        return Err(format!("template {src:?}: empty variable name '{{}}'"));
                    }
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(Part::Var(name));
                }
                '}' => return Err(format!("template {src:?}: unmatched '}}' (write '}}}}')")),
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Self { parts })
    }

    /// The variable names used, in order.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(n) => Some(n.as_str()),
            Part::Lit(_) => None,
        })
    }

    /// The literal parts, in order.
    pub(crate) fn literals(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Lit(s) => Some(s.as_str()),
            Part::Var(_) => None,
        })
    }

    /// Renders with `vars`; an absent variable renders empty (load-time checks rule it out).
    pub(crate) fn render(&self, vars: &BTreeMap<String, String>) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var(n) => out.push_str(vars.get(n).map_or("", String::as_str)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_render() {
        let vars: BTreeMap<String, String> = [("number", "331"), ("room", "demo")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let cases = [
            ("{room}", "demo"),
            ("tel-{number}", "tel-331"),
            ("{room}-{number}!", "demo-331!"),
            ("{{lit}}", "{lit}"),
            ("plain", "plain"),
            ("", ""),
        ];
        for (src, want) in cases {
            let t = Template::parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
            assert_eq!(t.render(&vars), want, "{src}");
        }
        let t = Template::parse("a{x}b{y_2}").expect("parses");
        assert_eq!(t.names().collect::<Vec<_>>(), ["x", "y_2"]);
        assert_eq!(t.literals().collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn malformed_templates() {
        for src in ["{room", "{}", "room}", "{ro-om}", "{a{b}}"] {
            assert!(Template::parse(src).is_err(), "{src} should be refused");
        }
    }
}
