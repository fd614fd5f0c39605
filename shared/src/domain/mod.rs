//! Domain values, valid by construction ("parse, don't validate"): an [`Email`], the bounded
//! texts ([`Password`], [`Title`], ...) and [`Patch`], which tells an absent field from one that
//! was sent. They depend on nothing else in this crate, so every layer can use them: the
//! repositories store them, the request schemas read into them, the handlers pass them on.

mod email;
mod patch;
mod text;

pub use email::Email;
pub use patch::Patch;
pub use text::{
    BoundedText, CurrentPassword, Description, FullName, LengthError, LinkToken, Password, Title,
};
