//! Plain-text sanitising with ammonia: no tags, no attributes, `<script>`/`<style>` content
//! dropped, bidi-override controls removed. The result is HTML-escaped text (`<` arrives as
//! `&lt;`, as in Slack's message format), safe to insert into a page, and sanitising it again
//! changes nothing.
//!
//! Most messages are plain text with nothing for the sanitiser to do: text made only of
//! characters that ammonia's parse and serialisation keep as they are ([`kept_as_is`]) is
//! returned as it came, without building a document for it (parsing and serialising took 2 %
//! of the server's CPU in the 100×10 fan-out benchmark, docs/benchmarks.md round 10).

use std::collections::HashSet;

use chat_domain::cipher::ContentSanitizer;
use chat_domain::text::is_bidi_control;

/// The ammonia-backed [`ContentSanitizer`].
#[derive(Debug)]
pub struct AmmoniaSanitizer {
    cleaner: ammonia::Builder<'static>,
}

impl Default for AmmoniaSanitizer {
    fn default() -> Self {
        let mut cleaner = ammonia::Builder::empty();
        cleaner.clean_content_tags(HashSet::from(["script", "style", "template", "noscript", "iframe", "object"]));
        cleaner.strip_comments(true);
        Self { cleaner }
    }
}

/// Whether ammonia's parse and serialisation keep `c` as it is wherever it stands in text:
/// not markup (`<`, `&`), not escaped on output (`>`, `&`, NBSP), not rewritten by the HTML
/// input stream (CR, NUL), not a bidi control (removed here) nor another control character.
fn kept_as_is(c: char) -> bool {
    match c {
        '\n' | '\t' => true,
        '<' | '>' | '&' | '\u{A0}' => false,
        c => !c.is_control() && !is_bidi_control(c),
    }
}

impl ContentSanitizer for AmmoniaSanitizer {
    fn sanitize(&self, raw: &str) -> String {
        if raw.chars().all(kept_as_is) {
            return raw.to_owned();
        }
        let without_bidi: String = raw.chars().filter(|&c| !is_bidi_control(c) && c != '\0').collect();
        self.cleaner.clean(&without_bidi).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(s: &str) -> String {
        AmmoniaSanitizer::default().sanitize(s)
    }

    #[test]
    fn tags_and_attributes_are_removed_but_text_stays() {
        assert_eq!(clean("<b onclick=\"x()\">bold</b> text"), "bold text");
        assert_eq!(clean("<script>alert(1)</script>hi"), "hi");
        assert_eq!(clean("<a href=\"javascript:alert(1)\">link</a>"), "link");
        assert_eq!(clean("<img src=x onerror=alert(1)>"), "");
    }

    #[test]
    fn plain_text_is_escaped_not_lost() {
        assert_eq!(clean("a < b && c > d"), "a &lt; b &amp;&amp; c &gt; d");
    }

    #[test]
    fn bidi_overrides_are_stripped() {
        assert_eq!(clean("abc\u{202E}def\u{2066}"), "abcdef");
    }

    /// The shortcut's premise, checked against ammonia itself for every character it lets
    /// through (4,096 at a time, each twice, beside a space and a letter), and for text that
    /// starts or ends with white space.
    #[test]
    fn text_of_characters_kept_as_is_is_what_ammonia_returns() {
        let cleaner = AmmoniaSanitizer::default();
        let kept: Vec<char> =
            (0..=u32::from(char::MAX)).filter_map(char::from_u32).filter(|&c| kept_as_is(c)).collect();
        assert!(kept.len() > 1_000_000, "{} characters", kept.len());
        for run in kept.chunks(4096) {
            let text: String = run.iter().flat_map(|&c| [c, ' ', c, 'x']).collect();
            assert!(text.chars().all(kept_as_is));
            let through_ammonia = cleaner.cleaner.clean(&text).to_string();
            assert_eq!(through_ammonia, text, "from {:?} to {:?}", run[0], run[run.len() - 1]);
        }
        for c in ['<', '>', '&', '\u{A0}', '\r', '\0', '\u{7}', '\u{85}', '\u{202E}'] {
            assert!(!kept_as_is(c), "{c:?}");
        }
        for text in ["plain text, \"quoted\" — ünïcödé 👍\n\tnext line", "\n\t leading and trailing \n", " "] {
            assert_eq!(cleaner.cleaner.clean(text).to_string(), text);
            assert_eq!(clean(text), text);
        }
    }

    #[test]
    fn sanitising_is_idempotent() {
        for input in ["<p>x</p>", "a < b", "&amp;&lt;", "<<script>>", "\"quoted\" 'text'", "<svg><g/onload=alert(1)>"] {
            let once = clean(input);
            assert_eq!(clean(&once), once, "input {input:?}");
        }
    }
}
