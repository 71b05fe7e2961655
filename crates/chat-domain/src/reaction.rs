//! Reactions: one emoji per (message, user, emoji), toggled.

use crate::error::DomainError;
use crate::text::{char_len, is_bidi_control};

/// An emoji (or short `:shortcode:`): 1 to 10 characters, no whitespace or control characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Emoji(String);

impl Emoji {
    /// Longest accepted emoji, in characters (grapheme clusters with modifiers need several).
    pub const MAX_CHARS: usize = 10;

    /// Validates an emoji.
    ///
    /// # Errors
    /// [`DomainError::Validation`] when empty, too long, or containing whitespace, control,
    /// bidi or markup characters.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let ok = !raw.is_empty()
            && char_len(raw) <= Self::MAX_CHARS
            && !raw.chars().any(|c| c.is_whitespace() || c.is_control() || is_bidi_control(c) || "<>&\"'`".contains(c));
        if ok { Ok(Self(raw.to_owned())) } else { Err(DomainError::invalid("emoji", "must be 1 to 10 characters of emoji")) }
    }

    /// The emoji.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
