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
