//! [`Email`]: a valid e-mail address, and the key that makes addresses unique.

/// A valid, trimmed e-mail address (≤ 254 characters) with its domain lower-cased, as
/// email-validator normalises it. Uniqueness uses [`Email::key`], the whole address lower-cased,
/// so `A@x.io` and `a@x.io` are the same account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub const MAX: usize = 254;

    /// The address, or why it is not one (for a human).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        if trimmed.chars().count() > Self::MAX {
            return Err(format!("The email address is too long (at most {} characters)", Self::MAX));
        }
        let options = email_address::Options::default()
            .with_required_tld()
            .without_domain_literal()
            .without_display_text();
        let parsed =
            email_address::EmailAddress::parse_with_options(trimmed, options).map_err(|e| e.to_string())?;
        Ok(Self(format!("{}@{}", parsed.local_part(), parsed.domain().to_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-insensitive uniqueness key.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }

    /// Rebuilds an address that was validated before it was stored.
    pub fn from_trusted(s: String) -> Self {
        Self(s)
    }
}

impl utoipa::PartialSchema for Email {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, SchemaFormat, Type};
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
            .max_length(Some(Self::MAX))
            .into()
    }
}

impl utoipa::ToSchema for Email {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_their_domain_lowercased() {
        let e = Email::parse("  Alice@Example.IO ").expect("valid");
        assert_eq!(e.as_str(), "Alice@example.io");
        assert_eq!(e.key(), "alice@example.io");
    }

    #[test]
    fn invalid_emails_are_rejected() {
        for bad in ["", "no-at-sign", "a@b", "a@@b.io", "Name <a@b.io>", "a@[127.0.0.1]", " @x.io"] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let long = format!("{}@example.io", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }
}
