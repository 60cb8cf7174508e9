//! Transforms of the called number, applied in order after a rule matched: regex replace, strip
//! prefix, add prefix, E.164 normalisation (with the `phonenumber` crate).

use phonenumber::country;
use regex::Regex;

/// One compiled transform step.
#[derive(Debug, Clone)]
pub(crate) enum Transform {
    /// Replaces every match of `re` by `with` (`$1`, `${name}` refer to its groups).
    Replace { re: Regex, with: String },
    /// Removes the prefix when the number starts with it; otherwise leaves it unchanged.
    StripPrefix(String),
    /// Prepends the prefix.
    AddPrefix(String),
    /// Parses the number as national to `country` (or international with `+`/`00`) and writes
    /// it as E.164 (`+33187654321`). `strict`: the number must also be valid in the number
    /// plan of its country (`123` is refused rather than turned into `+33123`).
    E164 { country: country::Id, strict: bool },
}

impl Transform {
    /// A short description for the dry-run trace.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Replace { re, with } => format!("replace {:?} with {with:?}", re.as_str()),
            Self::StripPrefix(p) => format!("strip_prefix {p:?}"),
            Self::AddPrefix(p) => format!("add_prefix {p:?}"),
            Self::E164 {
                country,
                strict: true,
            } => format!("e164 {}", country.as_ref()),
            Self::E164 {
                country,
                strict: false,
            } => format!("e164 {} (not strict)", country.as_ref()),
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
            Self::E164 { country, strict } => {
                let n = phonenumber::parse(Some(*country), number)
                    .map_err(|e| format!("{number:?} is not a phone number ({e})"))?;
                if *strict && !phonenumber::is_valid(&n) {
                    return Err(format!(
                        "{number:?} is not a valid number in its country's number plan"
                    ));
                }
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
        let e164 = |strict| Transform::E164 {
            country: fr,
            strict,
        };
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
            (e164(true), "01 87 65 43 21", Ok("+33187654321")),
            (e164(true), "0187654321", Ok("+33187654321")),
            (e164(true), "0033187654321", Ok("+33187654321")),
            (e164(true), "+442079460000", Ok("+442079460000")),
            (e164(true), "hello", Err(())),
            (e164(true), "+999123", Err(())), // no such country code
            (e164(true), "+331", Err(())),    // too short
            (e164(true), "123", Err(())),     // not in the French plan
            (e164(false), "123", Ok("+33123")),
            (e164(false), "hello", Err(())),
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
