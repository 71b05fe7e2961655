//! Plain-text sanitising with ammonia: no tags, no attributes, `<script>`/`<style>` content
//! dropped, bidi-override controls removed. The result is HTML-escaped text (`<` arrives as
//! `&lt;`, as in Slack's message format), safe to insert into a page, and sanitising it again
//! changes nothing.

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

impl ContentSanitizer for AmmoniaSanitizer {
    fn sanitize(&self, raw: &str) -> String {
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

    #[test]
    fn sanitising_is_idempotent() {
        for input in ["<p>x</p>", "a < b", "&amp;&lt;", "<<script>>", "\"quoted\" 'text'", "<svg><g/onload=alert(1)>"] {
            let once = clean(input);
            assert_eq!(clean(&once), once, "input {input:?}");
        }
    }
}
