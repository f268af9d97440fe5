//! Input rules the original services enforced with pydantic, answered in
//! FastAPI's 422 layout: `{"detail": [{"type", "loc", "msg", "ctx"?}, ...]}`
//! with every problem of a request listed, not just the first.
//!
//! The submitted value is deliberately not echoed back (pydantic's `input`):
//! it may be a password.

use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use crate::ApiError;

/// Longest email, name, title or description, in characters.
pub const MAX_TEXT_CHARS: usize = 255;
/// bcrypt reads at most 72 bytes; a longer password is refused where it is
/// set, rather than silently cut.
pub const PASSWORD_BYTES: std::ops::RangeInclusive<usize> = 8..=72;

/// Collects the problems of one request's input.
#[derive(Debug, Default)]
pub struct Validator {
    errors: Vec<Value>,
}

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a problem at `loc` (`["body", "email"]`, `["query", "limit"]`).
    pub fn error(&mut self, loc: &[&str], kind: &str, msg: impl Into<String>, ctx: Option<Value>) {
        let mut error = json!({ "type": kind, "loc": loc, "msg": msg.into() });
        if let Some(ctx) = ctx {
            error["ctx"] = ctx;
        }
        self.errors.push(error);
    }

    /// Text stored in PostgreSQL: between `min` and `max` characters, and
    /// without NUL, which a `text` column cannot hold. Newlines, tabs and
    /// any other Unicode stay as they are.
    pub fn text(&mut self, field: &str, value: &str, min: usize, max: usize) {
        let loc = ["body", field];
        let chars = value.chars().count();
        if chars < min {
            let plural = if min == 1 { "" } else { "s" };
            self.error(
                &loc,
                "string_too_short",
                format!("String should have at least {min} character{plural}"),
                Some(json!({ "min_length": min })),
            );
        } else if chars > max {
            self.error(
                &loc,
                "string_too_long",
                format!("String should have at most {max} characters"),
                Some(json!({ "max_length": max })),
            );
        }
        if value.contains('\0') {
            self.error(&loc, "string_pattern_mismatch", "String should not contain NUL characters", None);
        }
    }

    /// A password as it is set: 8 to 72 bytes (UTF-8), no NUL.
    pub fn password(&mut self, field: &str, value: &str) {
        let loc = ["body", field];
        let bytes = value.len();
        if bytes < *PASSWORD_BYTES.start() {
            self.error(
                &loc,
                "string_too_short",
                format!("String should have at least {} bytes", PASSWORD_BYTES.start()),
                Some(json!({ "min_length": PASSWORD_BYTES.start() })),
            );
        } else if bytes > *PASSWORD_BYTES.end() {
            self.error(
                &loc,
                "string_too_long",
                format!("String should have at most {} bytes", PASSWORD_BYTES.end()),
                Some(json!({ "max_length": PASSWORD_BYTES.end() })),
            );
        }
        if value.contains('\0') {
            self.error(&loc, "string_pattern_mismatch", "String should not contain NUL characters", None);
        }
    }

    /// An email address; returns it in the lower case it is stored and
    /// matched in.
    pub fn email(&mut self, field: &str, value: &str) -> String {
        if let Err(reason) = check_email(value) {
            self.error(
                &["body", field],
                "value_error",
                format!("value is not a valid email address: {reason}"),
                Some(json!({ "reason": reason })),
            );
        }
        value.to_lowercase()
    }

    /// A field that may be left out but not set to `null`.
    pub fn not_null<T>(&mut self, field: &str, value: &Patch<T>) {
        if matches!(value, Patch::Null) {
            self.error(&["body", field], "string_type", "Input should be a valid string", None);
        }
    }

    /// `Ok` if nothing was recorded, else the 422 listing every problem.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() { Ok(()) } else { Err(ApiError { status: 422, detail: Value::Array(self.errors) }) }
    }
}

/// Why `address` is not an email address, in the words of Python's
/// email-validator where it has them.
pub fn check_email(address: &str) -> Result<(), String> {
    if address.chars().count() > MAX_TEXT_CHARS {
        return Err(format!("The email address is too long ({MAX_TEXT_CHARS} characters at most)."));
    }
    if address.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("The email address contains invalid characters.".into());
    }
    let (local, domain) = match address.split('@').collect::<Vec<_>>().as_slice() {
        [local, domain] => (*local, *domain),
        [_] => return Err("An email address must have an @-sign.".into()),
        _ => return Err("The email address is not valid. It must have exactly one @-sign.".into()),
    };
    if local.is_empty() {
        return Err("There must be something before the @-sign.".into());
    }
    if domain.is_empty() {
        return Err("There must be something after the @-sign.".into());
    }
    if local.chars().count() > 64 {
        return Err("The email address is too long before the @-sign.".into());
    }
    let atext = |c: char| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii();
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("The email address has a period in the wrong place before the @-sign.".into());
    }
    if !local.chars().all(|c| c == '.' || atext(c)) {
        return Err("The email address contains invalid characters before the @-sign.".into());
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err("The part after the @-sign is not valid. It should have a period.".into());
    }
    for label in &labels {
        if label.is_empty() {
            return Err("An email address cannot have a period in the wrong place after the @-sign.".into());
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("An email address cannot have a hyphen in the wrong place after the @-sign.".into());
        }
        if label.chars().count() > 63 {
            return Err("The part after the @-sign has a label that is too long.".into());
        }
        if !label.chars().all(|c| c == '-' || c.is_alphanumeric()) {
            return Err("The part after the @-sign contains invalid characters.".into());
        }
    }
    if labels.last().is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit())) {
        return Err("The part after the @-sign is not valid. It is not within a valid top-level domain.".into());
    }
    Ok(())
}

/// A field of a partial update: left out (unchanged), `null`, or a value.
/// Use with `#[serde(default)]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Patch<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<T> Patch<T> {
    pub fn value(&self) -> Option<&T> {
        match self {
            Patch::Value(v) => Some(v),
            _ => None,
        }
    }

    pub fn is_absent(&self) -> bool {
        matches!(self, Patch::Absent)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(deserializer)? {
            Some(value) => Patch::Value(value),
            None => Patch::Null,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_accept_the_usual_and_refuse_the_malformed() {
        for good in ["a@b.co", "first.last+tag@sub.example.org", "ünï@exämple.de", "x_y@a-b.io"] {
            assert_eq!(check_email(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "plain",
            "a@b",
            "@b.co",
            "a@",
            "a@@b.co",
            "a b@c.co",
            ".a@b.co",
            "a..b@c.co",
            "a@-b.co",
            "a@b..co",
            "a@b.123",
            "a\0@b.co",
            "a@b_c.co",
        ] {
            assert!(check_email(bad).is_err(), "{bad:?}");
        }
        assert!(check_email(&format!("{}@b.co", "a".repeat(65))).is_err());
    }

    #[test]
    fn text_counts_characters_and_refuses_nul() {
        let mut v = Validator::new();
        v.text("title", &"é".repeat(MAX_TEXT_CHARS), 1, MAX_TEXT_CHARS);
        v.text("title", "line one\n\tline two 🦀", 1, MAX_TEXT_CHARS);
        assert!(v.finish().is_ok());
        let mut v = Validator::new();
        v.text("title", "", 1, MAX_TEXT_CHARS);
        v.text("description", "a\0b", 0, MAX_TEXT_CHARS);
        v.text("full_name", &"x".repeat(MAX_TEXT_CHARS + 1), 0, MAX_TEXT_CHARS);
        let err = v.finish().unwrap_err();
        assert_eq!(err.status, 422);
        let kinds: Vec<_> = err.detail.as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["string_too_short", "string_pattern_mismatch", "string_too_long"]);
        assert_eq!(err.detail[1]["loc"], json!(["body", "description"]));
    }

    #[test]
    fn passwords_are_counted_in_bytes() {
        let ok = |p: &str| {
            let mut v = Validator::new();
            v.password("password", p);
            v.finish().is_ok()
        };
        assert!(ok("12345678"));
        assert!(!ok("1234567"));
        assert!(ok(&"a".repeat(72)));
        assert!(!ok(&"a".repeat(73)));
        // 24 three-byte characters are 72 bytes; 25 are too many.
        assert!(ok(&"€".repeat(24)));
        assert!(!ok(&"€".repeat(25)));
        assert!(!ok("password\0"));
    }

    #[test]
    fn emails_are_lower_cased() {
        let mut v = Validator::new();
        assert_eq!(v.email("email", "Someone@Example.COM"), "someone@example.com");
        assert!(v.finish().is_ok());
    }

    #[derive(Deserialize)]
    struct Update {
        #[serde(default)]
        name: Patch<String>,
    }

    #[test]
    fn patch_tells_absent_from_null() {
        let parse = |s: &str| serde_json::from_str::<Update>(s).unwrap().name;
        assert_eq!(parse("{}"), Patch::Absent);
        assert_eq!(parse(r#"{"name": null}"#), Patch::Null);
        assert_eq!(parse(r#"{"name": "x"}"#), Patch::Value("x".into()));
    }
}
