//! Bounded texts: string newtypes whose length (in characters, as Pydantic counts them) is
//! within a range. [`bounded_string!`](crate::bounded_string) declares one; a function crate may
//! declare its own the same way, and reading it from a JSON body then comes for free.

/// Why a text is not of an allowed length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthError {
    TooShort { min: usize },
    TooLong { max: usize },
}

/// A string newtype with a length range, in characters (Unicode scalar values).
pub trait BoundedText: Sized {
    const MIN: usize;
    const MAX: usize;

    /// Wraps a string whose length was checked.
    fn from_checked(text: String) -> Self;

    /// The text, if its length is within the range.
    fn parse(text: &str) -> Result<Self, LengthError> {
        let n = text.chars().count();
        if n < Self::MIN {
            return Err(LengthError::TooShort { min: Self::MIN });
        }
        if n > Self::MAX {
            return Err(LengthError::TooLong { max: Self::MAX });
        }
        Ok(Self::from_checked(text.to_owned()))
    }
}

/// Declares a bounded text: `bounded_string!(/// docs Title, 1, 255);`, or with `redacted` before
/// the name for a secret whose `Debug` must never show it. The type gets `MIN`/`MAX`, `parse`,
/// `as_str`, `into_inner`, its OpenAPI schema (a string with those lengths) and, through
/// [`BoundedText`], a reader for request bodies.
#[macro_export]
macro_rules! bounded_string {
    ($(#[$doc:meta])* redacted $name:ident, $min:expr, $max:expr) => {
        $crate::bounded_string!(@declare $(#[$doc])* $name, $min, $max);
        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(concat!(stringify!($name), "(**redacted**)"))
            }
        }
    };
    ($(#[$doc:meta])* $name:ident, $min:expr, $max:expr) => {
        $crate::bounded_string!(@declare $(#[$doc])* $name, $min, $max);
        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Debug::fmt(&self.0, f)
            }
        }
    };
    (@declare $(#[$doc:meta])* $name:ident, $min:expr, $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub const MIN: usize = $min;
            pub const MAX: usize = $max;

            pub fn parse(text: &str) -> Result<Self, $crate::domain::LengthError> {
                <Self as $crate::domain::BoundedText>::parse(text)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl $crate::domain::BoundedText for $name {
            const MIN: usize = $min;
            const MAX: usize = $max;

            fn from_checked(text: String) -> Self {
                Self(text)
            }
        }

        impl $crate::__macro::utoipa::PartialSchema for $name {
            fn schema() -> $crate::__macro::utoipa::openapi::RefOr<$crate::__macro::utoipa::openapi::schema::Schema> {
                $crate::__macro::utoipa::openapi::ObjectBuilder::new()
                    .schema_type($crate::__macro::utoipa::openapi::schema::Type::String)
                    .min_length(Some($min))
                    .max_length(Some($max))
                    .into()
            }
        }

        impl $crate::__macro::utoipa::ToSchema for $name {}
    };
}

crate::bounded_string!(
    /// A password as submitted: 8–128 characters. Its `Debug` never shows it.
    redacted Password, 8, 128
);
crate::bounded_string!(
    /// The current password as typed: 1–128 characters, checked against the stored hash (a wrong
    /// one is a 400, not a 422).
    redacted CurrentPassword, 1, 128
);
crate::bounded_string!(
    /// A token from a reset or verification link, as typed: 1–128 characters (ours are 64). Its
    /// `Debug` never shows it.
    redacted LinkToken, 1, 128
);
crate::bounded_string!(
    /// `full_name`: at most 255 characters.
    FullName, 0, 255
);
crate::bounded_string!(
    /// An item's title: 1–255 characters.
    Title, 1, 255
);
crate::bounded_string!(
    /// An item's description: at most 4000 characters.
    Description, 0, 4000
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_counted_in_characters() {
        assert!(Password::parse("éééééééé").is_ok());
        assert_eq!(Password::parse("short"), Err(LengthError::TooShort { min: 8 }));
        assert!(Title::parse("").is_err());
        assert!(Title::parse(&"x".repeat(255)).is_ok());
        assert_eq!(Title::parse(&"x".repeat(256)), Err(LengthError::TooLong { max: 255 }));
    }

    #[test]
    fn password_debug_never_shows_the_password() {
        let p = Password::parse("hunter2hunter2").expect("valid");
        assert!(!format!("{p:?}").contains("hunter2"));
        let c = CurrentPassword::parse("hunter2hunter2").expect("valid");
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
