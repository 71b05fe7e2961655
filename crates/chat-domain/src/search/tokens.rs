//! Tokenisation for the blind index: the same normalisation for what is indexed and for what
//! is searched, so that equal words give equal tokens.
//!
//! 1. **Normalise**: Unicode NFKC (compatibility forms fold: `ﬁ` → `fi`, full-width `Ａ` → `A`,
//!    a decomposed `é` equals the precomposed one), then lower-casing with
//!    [`str::to_lowercase`] (full Unicode lower-casing, not the locale-aware case folding of
//!    UAX #21: `ß` stays `ß`, Turkish dotted/dotless `i` is not special-cased), then NFKC again
//!    (lower-casing can leave a string that is not NFKC). Accents are kept: `café` and `cafe`
//!    are different words.
//! 2. **Segment** with UAX #29 word boundaries (`unicode-segmentation`'s `unicode_words`):
//!    only segments with a letter or digit are words, so punctuation and emoji are not
//!    searchable. Ideographs (Han) and Hiragana are one word per character; Katakana runs,
//!    Hangul syllables and Latin letters form words; `can't` and `l'été` are one word each.
//! 3. **Tokens of a word** `w` of `n` characters: if `n < MIN_PREFIX_CHARS`, `w` itself;
//!    otherwise its prefixes of `MIN_PREFIX_CHARS..=min(n, MAX_PREFIX_CHARS)` characters (the
//!    longest is `w` itself when `n <= MAX_PREFIX_CHARS`). At most [`MAX_TOKENS_PER_MESSAGE`]
//!    distinct tokens per message: the longest token of every word first, in order, then the
//!    shorter prefixes, so that whole words are the last thing a long message loses.
//! 4. **A query term** `q` of `n` characters matches a word equal to `q` when
//!    `n < MIN_PREFIX_CHARS`, else any word starting with `q`. Its token is `q` or its prefix of
//!    `min(n, MAX_PREFIX_CHARS)` characters, which every matching word was indexed under. The
//!    index is a candidate filter: words longer than the prefix cap share a token, so the
//!    service re-checks each candidate's decrypted text with [`SearchQuery::matches`].

use std::collections::HashSet;

use unicode_normalization::UnicodeNormalization;
use unicode_segmentation::UnicodeSegmentation;

use crate::error::{DomainError, DomainResult};

/// Shortest prefix indexed (and shortest query term matched as a prefix), in characters.
pub const MIN_PREFIX_CHARS: usize = 3;

/// Longest prefix indexed, in characters: longer words are indexed (and searched) by their
/// first `MAX_PREFIX_CHARS` characters.
pub const MAX_PREFIX_CHARS: usize = 12;

/// Most distinct tokens indexed for one message.
pub const MAX_TOKENS_PER_MESSAGE: usize = 512;

/// Longest search query, in characters.
pub const MAX_QUERY_CHARS: usize = 256;

/// Most words in a search query.
pub const MAX_QUERY_TERMS: usize = 8;

/// NFKC, lower-cased, NFKC again. ASCII text is its own NFKC, and its lower case is ASCII,
/// so it only has its letters lowered (the common case, without two passes of normalisation).
#[must_use]
pub fn normalize(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    normalize_unicode(text)
}

/// [`normalize`] without the ASCII shortcut.
pub(crate) fn normalize_unicode(text: &str) -> String {
    let folded: String = text.nfkc().collect::<String>().to_lowercase();
    folded.nfkc().collect()
}

/// Undoes the HTML escaping of sanitised message text (`&lt;`, `&gt;`, `&amp;`, `&quot;`,
/// `&#39;`, `&nbsp;`), so that `AT&amp;T` is indexed as the user typed it, `AT&T`.
fn unescape(text: &str) -> String {
    const ENTITIES: [(&str, char); 7] = [
        ("&lt;", '<'),
        ("&gt;", '>'),
        ("&amp;", '&'),
        ("&quot;", '"'),
        ("&#39;", '\''),
        ("&#x27;", '\''),
        ("&nbsp;", '\u{a0}'),
    ];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        match ENTITIES.iter().find(|(entity, _)| rest.starts_with(entity)) {
            Some((entity, ch)) => {
                out.push(*ch);
                rest = &rest[entity.len()..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The words of already normalised text.
fn words(normalized: &str) -> impl Iterator<Item = &str> {
    normalized.unicode_words()
}

/// The first `chars` characters of `word`.
fn prefix(word: &str, chars: usize) -> &str {
    word.char_indices().nth(chars).map_or(word, |(at, _)| &word[..at])
}

/// The token a word (or query term) is looked up by: itself when short, else its longest
/// indexed prefix.
fn primary_token(word: &str) -> &str {
    let n = word.chars().count();
    if n < MIN_PREFIX_CHARS { word } else { prefix(word, n.min(MAX_PREFIX_CHARS)) }
}

/// The distinct normalised tokens to index for a message's (sanitised) text, at most
/// [`MAX_TOKENS_PER_MESSAGE`]; see the [module docs](self).
#[must_use]
pub fn index_tokens(content: &str) -> Vec<String> {
    let text = normalize(&unescape(content));
    let words: Vec<&str> = words(&text).collect();
    let mut seen = HashSet::new();
    let mut tokens = Vec::new();
    let mut push = |token: &str| {
        if tokens.len() < MAX_TOKENS_PER_MESSAGE && seen.insert(token.to_owned()) {
            tokens.push(token.to_owned());
        }
    };
    for word in &words {
        push(primary_token(word));
    }
    for word in &words {
        let n = word.chars().count().min(MAX_PREFIX_CHARS);
        for len in (MIN_PREFIX_CHARS..n).rev() {
            push(prefix(word, len));
        }
    }
    tokens
}

/// One word of a query.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Term {
    /// Normalised.
    word: String,
    /// Shorter than [`MIN_PREFIX_CHARS`]: matches equal words only.
    exact: bool,
}

impl Term {
    fn matches(&self, word: &str) -> bool {
        if self.exact { word == self.word } else { word.starts_with(&self.word) }
    }
}

/// A parsed search query: every term must match some word of a message (AND).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchQuery {
    terms: Vec<Term>,
}

impl SearchQuery {
    /// Parses raw query text.
    ///
    /// # Errors
    /// `Validation` on `q` when it is longer than [`MAX_QUERY_CHARS`], has no word (empty,
    /// blank, only punctuation or emoji), or more than [`MAX_QUERY_TERMS`] distinct words.
    pub fn parse(raw: &str) -> DomainResult<Self> {
        if raw.chars().count() > MAX_QUERY_CHARS {
            return Err(DomainError::invalid("q", format!("must be at most {MAX_QUERY_CHARS} characters")));
        }
        let text = normalize(raw);
        let mut terms: Vec<Term> = Vec::new();
        for word in words(&text) {
            let term = Term { word: word.to_owned(), exact: word.chars().count() < MIN_PREFIX_CHARS };
            if !terms.contains(&term) {
                terms.push(term);
            }
        }
        if terms.is_empty() {
            return Err(DomainError::invalid("q", "must contain a word (letters or digits)"));
        }
        if terms.len() > MAX_QUERY_TERMS {
            return Err(DomainError::invalid("q", format!("must have at most {MAX_QUERY_TERMS} words")));
        }
        Ok(Self { terms })
    }

    /// The distinct tokens to look up, one per term.
    #[must_use]
    pub fn tokens(&self) -> Vec<String> {
        let mut tokens: Vec<String> = Vec::new();
        for term in &self.terms {
            let token = primary_token(&term.word).to_owned();
            if !tokens.contains(&token) {
                tokens.push(token);
            }
        }
        tokens
    }

    /// Whether sanitised message text matches: every term matches one of its words.
    #[must_use]
    pub fn matches(&self, content: &str) -> bool {
        let text = normalize(&unescape(content));
        let words: Vec<&str> = words(&text).collect();
        self.terms.iter().all(|term| words.iter().any(|word| term.matches(word)))
    }
}
