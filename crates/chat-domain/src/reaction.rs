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
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(DomainError::invalid("emoji", "must be 1 to 10 characters of emoji"))
        }
    }

    /// The emoji.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::assert_invalid;

    #[test]
    fn an_emoji_or_a_short_code_is_accepted_as_is() {
        for ok in ["👍", "👍🏽", "👨‍👩‍👧", ":thumbsup:", "+1"] {
            assert_eq!(Emoji::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn an_emoji_has_at_most_10_characters() {
        assert!(Emoji::parse(&"😀".repeat(10)).is_ok());
        assert_invalid(Emoji::parse(&"😀".repeat(11)), "emoji");
        assert_invalid(Emoji::parse(":thumbs_up:"), "emoji");
    }

    #[test]
    fn an_empty_emoji_or_one_with_whitespace_controls_or_markup_is_rejected() {
        for bad in ["", " ", "👍 ", "a\tb", "\n", "<b>", "&amp;", "\"", "'", "`x`", "\u{202E}👍", "\u{0007}"] {
            assert_invalid(Emoji::parse(bad), "emoji");
        }
    }
}
