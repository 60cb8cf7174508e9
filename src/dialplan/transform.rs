//! Transforms of the called number, applied in order after a rule matched: regex replace, strip
//! prefix, add prefix, E.164 normalisation (with the `phonenumber` crate).

use phonenumber::country;
use regex::Regex;

/// One compiled transform step.
#[derive(Debug, Clone)]
pub(crate) enum Transform {
    /// Replaces every match of `re` by `with` (`$1`, `${name}` refer to its groups).
    Replace { re: Regex, with: String },
    /// Removes `0` when the number starts with it; otherwise leaves it unchanged.
    StripPrefix(String),
    /// Prepends the prefix.
    AddPrefix(String),
    /// Parses the number as national to `country` (or international with `+`) and writes it
    /// as E.164 (`+33187654321`).
    E164(country::Id),
}

impl Transform {
    /// A short description for the dry-run trace.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Replace { re, with } => format!("replace {:?} with {with:?}", re.as_str()),
            Self::StripPrefix(p) => format!("strip_prefix {p:?}"),
            Self::AddPrefix(p) => format!("add_prefix {p:?}"),
            Self::E164(c) => format!("e164 {}", c.as_ref()),
        }
    }

    /// Applies the step; an error means the number cannot be transformed (E.164 only).
    pub(crate) fn apply(&self, number: &str) -> Result<String, String> {
        Ok(match self {
            Self::Replace { re, with } => re.replace_all(number, with.as_str()).into_owned(),
            Self::StripPrefix(p) => number
                .strip_prefix(p.as_str())
                .unwrap_or(number)
                .to_string(),
            Self::AddPrefix(p) => format!("{p}{number}"),
            Self::E164(c) => {
                let n = phonenumber::parse(Some(*c), number)
                    .map_err(|e| format!("{number:?} is not a phone number ({e})"))?;
                phonenumber::format(&n)
                    .mode(phonenumber::Mode::E164)
                    .to_string()
            }
        })
    }
}

/// The country of a two-letter ISO 3166 code (`fr`, `FR`).
pub(crate) fn country(code: &str) -> Option<country::Id> {
    if code.len() != 2 {
        return None;
    }
    code.to_ascii_uppercase().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps() {
        let fr = country("fr").expect("FR exists");
        let cases: Vec<(Transform, &str, Result<&str, ()>)> = vec![
            (
                Transform::Replace {
                    re: Regex::new("^00").expect("regex"),
                    with: "+".into(),
                },
                "0033187654321",
                Ok("+33187654321"),
            ),
            (
                Transform::Replace {
                    re: Regex::new(r"^(?P<cc>\d{2})(\d+)$").expect("regex"),
                    with: "${cc}-$2".into(),
                },
                "331234",
                Ok("33-1234"),
            ),
            (Transform::StripPrefix("9".into()), "90123", Ok("0123")),
            (Transform::StripPrefix("9".into()), "80123", Ok("80123")),
            (
                Transform::AddPrefix("+33".into()),
                "187654321",
                Ok("+33187654321"),
            ),
            (Transform::E164(fr), "01 87 65 43 21", Ok("+33187654321")),
            (Transform::E164(fr), "0187654321", Ok("+33187654321")),
            (Transform::E164(fr), "+442079460000", Ok("+442079460000")),
            (Transform::E164(fr), "hello", Err(())),
        ];
        for (t, input, want) in cases {
            let got = t.apply(input).map_err(|_| ());
            assert_eq!(
                got.as_deref(),
                want.as_deref(),
                "{} on {input}",
                t.describe()
            );
        }
    }

    #[test]
    fn countries() {
        assert!(country("FR").is_some());
        assert!(country("be").is_some());
        assert!(country("XX").is_none());
        assert!(country("FRA").is_none());
        assert!(country("").is_none());
    }
}
