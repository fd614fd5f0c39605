//! [`Email`]: a valid e-mail address, normalised (API.md, "Schemas"), and the key that makes
//! addresses unique.

use icu_normalizer::ComposingNormalizerBorrowed;

/// A valid e-mail address in its normal form: trimmed, Unicode NFC, lower-cased (≤ 254
/// characters), the domain as the user typed it (Unicode or `xn--`). Its [`Email::key`], which
/// makes an account unique, also converts the domain to its IDNA ASCII form: `josé` in NFC and
/// in NFD, or `bücher.example` and `xn--bcher-kva.example`, are one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    address: String,
    key: String,
}

const NFC: ComposingNormalizerBorrowed<'static> = ComposingNormalizerBorrowed::new_nfc();

impl Email {
    pub const MAX: usize = 254;

    /// The address, or why it is not one (for a human).
    pub fn parse(raw: &str) -> Result<Self, String> {
        // NFC, lower case, and NFC again: lower-casing can leave a sequence that composes.
        let normal = NFC.normalize(&NFC.normalize(raw.trim()).to_lowercase()).into_owned();
        if normal.chars().count() > Self::MAX {
            return Err(format!("The email address is too long (at most {} characters)", Self::MAX));
        }
        let options = email_address::Options::default()
            .with_required_tld()
            .without_domain_literal()
            .without_display_text();
        let parsed =
            email_address::EmailAddress::parse_with_options(&normal, options).map_err(|e| e.to_string())?;
        let (local, domain) = (parsed.local_part(), parsed.domain());
        let ascii = idna::domain_to_ascii(domain).map_err(|_| {
            "The part after the @-sign is not a valid internationalised domain name".to_owned()
        })?;
        // DNS's own limits, on the form DNS sees: labels of at most 63 octets, 253 in all.
        if ascii.len() > 253 || ascii.split('.').any(|label| label.is_empty() || label.len() > 63) {
            return Err("The part after the @-sign is too long for a domain name".to_owned());
        }
        let key = format!("{local}@{ascii}");
        if key.chars().count() > Self::MAX {
            return Err(format!("The email address is too long (at most {} characters)", Self::MAX));
        }
        Ok(Self { address: format!("{local}@{domain}"), key })
    }

    pub fn as_str(&self) -> &str {
        &self.address
    }

    /// The uniqueness key: the normal form with the domain in IDNA ASCII.
    pub fn key(&self) -> String {
        self.key.clone()
    }

    /// The keys an account with this address may have been reserved under by code before API.md
    /// v1.1, which keyed an address by its lower-cased spelling as typed: NFC or NFD, with the
    /// domain in Unicode or in `xn--` form (but for the current key itself). Until the migration
    /// `0002_normal_emails` has rekeyed those accounts, a new account or an email change must
    /// not take an address one of them holds under such a key.
    pub fn legacy_keys(&self) -> Vec<String> {
        let Some((local, domain)) = self.address.rsplit_once('@') else {
            return Vec::new();
        };
        let ascii = self.key.rsplit_once('@').map_or(domain, |(_, ascii)| ascii);
        let (unicode, _) = idna::domain_to_unicode(ascii);
        let nfd =
            |s: &str| icu_normalizer::DecomposingNormalizerBorrowed::new_nfd().normalize(s).into_owned();
        let (local_nfd, unicode_nfd) = (nfd(local), nfd(&unicode));
        let mut keys = Vec::new();
        for local in [local, local_nfd.as_str()] {
            for domain in [unicode.as_str(), unicode_nfd.as_str(), ascii, domain] {
                let key = format!("{local}@{domain}");
                if key != self.key && !keys.contains(&key) {
                    keys.push(key);
                }
            }
        }
        keys
    }

    /// Rebuilds an address as a store holds it, with the key it was stored under (which the
    /// migration `0002_normal_emails` brings to the current form for records written before).
    pub fn from_stored(address: String, key: String) -> Self {
        Self { address, key }
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
    fn emails_are_trimmed_and_lower_cased() {
        let e = Email::parse("  Alice@Example.IO ").expect("valid");
        assert_eq!(e.as_str(), "alice@example.io");
        assert_eq!(e.key(), "alice@example.io");
    }

    #[test]
    fn unicode_spellings_of_one_address_are_one_key() {
        let nfc = Email::parse("jos\u{e9}@example.com").expect("nfc");
        let nfd = Email::parse("jose\u{301}@example.com").expect("nfd");
        assert_eq!((nfc.as_str(), nfd.as_str()), ("jos\u{e9}@example.com", "jos\u{e9}@example.com"));
        assert_eq!(nfc.key(), nfd.key());
        let unicode = Email::parse("info@B\u{fc}cher.example").expect("unicode domain");
        let ascii = Email::parse("INFO@xn--bcher-kva.example").expect("ascii domain");
        assert_eq!(unicode.as_str(), "info@b\u{fc}cher.example", "the domain as typed, lower-cased");
        assert_eq!(ascii.as_str(), "info@xn--bcher-kva.example");
        assert_eq!(unicode.key(), "info@xn--bcher-kva.example");
        assert_eq!(unicode.key(), ascii.key());
        // What code before v1.1 could have keyed these addresses by.
        let bucher = ["info@b\u{fc}cher.example", "info@bu\u{308}cher.example"];
        assert_eq!(
            (unicode.legacy_keys(), ascii.legacy_keys()),
            (bucher.map(String::from).to_vec(), bucher.map(String::from).to_vec())
        );
        assert_eq!(nfc.legacy_keys(), ["jose\u{301}@example.com"]);
        assert_eq!(Email::parse("plain@example.com").expect("ascii").legacy_keys(), Vec::<String>::new());
    }

    #[test]
    fn invalid_emails_are_rejected() {
        for bad in
            ["", "no-at-sign", "a@b", "a@@b.io", "Name <a@b.io>", "a@[127.0.0.1]", " @x.io", "a@xn--zz.io"]
        {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let long = format!("{}@example.io", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
        // Characters, not bytes: 32 two-byte letters and a 200-character domain are 233.
        let accented = format!(
            "{}@{}.example",
            "\u{e9}".repeat(32),
            "d".repeat(60) + "." + &"d".repeat(60) + "." + &"d".repeat(60)
        );
        assert!(Email::parse(&accented).is_ok(), "{accented}");
        // A label of 63 octets in UTF-8 whose xn-- form is 67: no domain name.
        let label: String =
            (0..21).map(|i| char::from_u32(0x4e00 + i * 997).expect("a CJK letter")).collect();
        assert_eq!(label.len(), 63);
        assert!(Email::parse(&format!("a@{label}.example")).is_err());
        let shorter: String = label.chars().take(10).collect();
        assert!(Email::parse(&format!("a@{shorter}.example")).is_ok());
    }
}
