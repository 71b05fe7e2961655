//! Small text helpers shared by the validating newtypes.

/// Number of Unicode scalar values (what users and SPEC.md call "characters").
#[must_use]
pub fn char_len(s: &str) -> usize {
    s.chars().count()
}

/// Bidirectional-override and isolate controls (U+202A–U+202E, U+2066–U+2069): they let text
/// display in an order other than it reads ("Trojan Source"), so they are removed everywhere.
#[must_use]
pub const fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// One line of user text: trimmed, control and bidi characters removed.
#[must_use]
pub fn clean_single_line(raw: &str) -> String {
    raw.chars().filter(|&c| !c.is_control() && !is_bidi_control(c)).collect::<String>().trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_counts_characters_not_bytes() {
        assert_eq!(char_len("héllo"), 5);
        assert_eq!(char_len("👍🏽"), 2);
        assert_eq!(char_len(""), 0);
    }

    #[test]
    fn exactly_the_bidi_override_and_isolate_controls_are_bidi_controls() {
        for c in
            ['\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}']
        {
            assert!(is_bidi_control(c), "{:04X}", u32::from(c));
        }
        for c in ['\u{2029}', '\u{202F}', '\u{2065}', '\u{206A}', 'a', '\u{200F}'] {
            assert!(!is_bidi_control(c), "{:04X}", u32::from(c));
        }
    }

    #[test]
    fn a_single_line_loses_controls_bidi_and_surrounding_space() {
        assert_eq!(clean_single_line("  a\u{202E}b\nc\td\u{0000} "), "abcd");
        assert_eq!(clean_single_line("\u{2066}  \u{2069}"), "");
        assert_eq!(clean_single_line("Zoë Ünal"), "Zoë Ünal");
    }
}
