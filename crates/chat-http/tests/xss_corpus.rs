//! An XSS corpus against [`AmmoniaSanitizer`]: a few dozen classic vectors, each crossed with
//! encodings, case changes, nesting and unicode tricks (well over 500 payloads), and property
//! tests that sanitising is idempotent.
//!
//! **What "safe" means here.** The sanitizer's output is HTML text to be inserted into a page
//! as is. It is safe when it contains *no markup at all*: not a single raw `<` or `>` (so no
//! start tag, end tag, comment, CDATA section, doctype or processing instruction — `<`
//! followed by a letter, `/`, `!` or `?` cannot occur), every `&` begins one of the entities
//! the serializer writes (`&amp;` `&lt;` `&gt;` `&quot;` `&nbsp;`), and no NUL or bidi-override
//! control survives. With no tag there is no attribute, so no `on…=` handler and no
//! `javascript:` URL can be live; escaped text such as `&lt;script&gt;` is text and is shown,
//! not run. The checks below are written against that definition, tag scanner included, so
//! that a future allow-list of tags would make them fail loudly.

use chat_domain::cipher::ContentSanitizer;
use chat_domain::text::is_bidi_control;
use chat_http::sanitize::AmmoniaSanitizer;
use proptest::prelude::*;

/// Classic vectors: tag breakers, event handlers, dangerous URL schemes, SVG/MathML,
/// comments, CDATA, raw-text elements, malformed nesting.
const VECTORS: &[&str] = &[
    "<script>alert(1)</script>",
    "<script src=//evil.example/x.js></script>",
    "<img src=x onerror=alert(1)>",
    "<img src=\"x\" onerror=\"alert(document.cookie)\">",
    "<img/src/onerror=alert(1)>",
    "<body onload=alert(1)>",
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    "<svg><g/onload=alert(1)></svg>",
    "<svg><a xlink:href=\"javascript:alert(1)\"><text>x</text></a></svg>",
    "<svg><animate onbegin=alert(1) attributeName=x dur=1s>",
    "<svg><foreignObject><iframe src=javascript:alert(1)></iframe></foreignObject></svg>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<math href=\"javascript:alert(1)\">click</math>",
    "<a href=\"javascript:alert(1)\">click</a>",
    "<a href=\"JaVaScRiPt:alert(1)\">click</a>",
    "<a href=\"  javascript:alert(1)\">click</a>",
    "<a href=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==\">x</a>",
    "<a href=\"vbscript:msgbox(1)\">x</a>",
    "<iframe src=\"javascript:alert(1)\"></iframe>",
    "<iframe srcdoc=\"<script>alert(1)</script>\"></iframe>",
    "<object data=\"javascript:alert(1)\"></object>",
    "<embed src=\"javascript:alert(1)\">",
    "<form action=\"javascript:alert(1)\"><input type=submit></form>",
    "<input autofocus onfocus=alert(1)>",
    "<details open ontoggle=alert(1)>",
    "<video><source onerror=\"alert(1)\"></video>",
    "<marquee onstart=alert(1)>x</marquee>",
    "<meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\">",
    "<link rel=stylesheet href=\"javascript:alert(1)\">",
    "<style>@import 'javascript:alert(1)';</style>",
    "<div style=\"background:url(javascript:alert(1))\">x</div>",
    "<base href=\"javascript:alert(1)//\">",
    "\"><script>alert(1)</script>",
    "'><img src=x onerror=alert(1)>",
    "</textarea><script>alert(1)</script>",
    "</title><script>alert(1)</script>",
    "<!--<script>alert(1)</script>-->",
    "<!--><script>alert(1)</script>-->",
    "<![CDATA[<script>alert(1)</script>]]>",
    "<?xml version=\"1.0\"?><script>alert(1)</script>",
    "<!DOCTYPE html><script>alert(1)</script>",
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    "<<script>alert(1)//<</script>",
    "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\"></noscript>",
    "<template><script>alert(1)</script></template>",
    "<xmp><img src=x onerror=alert(1)></xmp>",
    "<plaintext><img src=x onerror=alert(1)>",
    "<table><td background=\"javascript:alert(1)\">",
    "<isindex type=image src=1 onerror=alert(1)>",
];

/// Ways to disguise a vector.
fn variants(vector: &str) -> Vec<String> {
    let entity_decimal: String = vector.chars().map(|c| format!("&#{};", u32::from(c))).collect();
    let entity_hex_no_semicolon: String = vector.chars().map(|c| format!("&#x{:x}", u32::from(c))).collect();
    let named = vector.replace('<', "&lt;").replace('>', "&gt;");
    let mixed_case: String = vector
        .chars()
        .enumerate()
        .map(|(i, c)| if i % 2 == 0 { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
        .collect();
    vec![
        vector.to_owned(),
        vector.to_uppercase(),
        mixed_case,
        vector.replace("script", "scr\0ipt").replace("on", "o\0n"),
        vector.replace("javascript:", "java\tscript:").replace("javascript", "java\nscript"),
        vector.replace("javascript:", "&#106;avascript&colon;"),
        vector.replace("javascript", "java\u{200B}script").replace('<', "<\u{200D}"),
        vector.replace('<', "\u{202E}<").replace('>', ">\u{2066}"),
        vector.replace('<', "\u{FF1C}").replace('>', "\u{FF1E}"),
        vector.replace(' ', "/").replace('"', "`"),
        format!("<svg>{vector}</svg>"),
        format!("<math><mi>{vector}</mi></math>"),
        format!("<div><p>{vector}</p></div>"),
        format!("<!-- {vector} -->"),
        format!("<![CDATA[{vector}]]>"),
        format!("\"'>{vector}<\""),
        format!("<textarea>{vector}</textarea>"),
        format!("<{vector}>"),
        entity_decimal,
        entity_hex_no_semicolon,
        named.clone(),
        named.replace('&', "&amp;"),
        vector.replace('<', "%3C").replace('>', "%3E"),
        vector.replace('<', "\\u003c").replace('>', "\\u003e"),
    ]
}

fn corpus() -> Vec<String> {
    VECTORS.iter().flat_map(|v| variants(v)).collect()
}

fn clean(s: &str) -> String {
    AmmoniaSanitizer::default().sanitize(s)
}

/// Where `output` contains markup: a `<` followed by a letter, `/`, `!` or `?` (a tag,
/// comment, CDATA section, doctype or processing instruction).
fn tag_at(output: &str) -> Option<usize> {
    let bytes = output.as_bytes();
    bytes.windows(2).position(|w| w[0] == b'<' && (w[1].is_ascii_alphabetic() || b"/!?".contains(&w[1])))
}

/// Every reason `output` is not safe inert text (empty when it is).
fn violations(output: &str) -> Vec<String> {
    let mut found = Vec::new();
    if let Some(at) = tag_at(output) {
        found.push(format!("markup at byte {at}"));
    }
    if output.contains('<') || output.contains('>') {
        found.push("a raw angle bracket".to_owned());
    }
    let mut rest = output;
    while let Some(at) = rest.find('&') {
        rest = &rest[at..];
        if !["&amp;", "&lt;", "&gt;", "&quot;", "&nbsp;"].iter().any(|e| rest.starts_with(e)) {
            found.push(format!("a bare or unexpected entity at {:?}", &rest[..rest.len().min(12)]));
        }
        rest = &rest[1..];
    }
    if output.contains('\0') {
        found.push("a NUL".to_owned());
    }
    if output.chars().any(is_bidi_control) {
        found.push("a bidi control".to_owned());
    }
    found
}

#[test]
fn the_corpus_is_large() {
    assert!(corpus().len() >= 500, "{} payloads", corpus().len());
}

#[test]
fn no_payload_of_the_corpus_leaves_markup_behind() {
    let mut failures = Vec::new();
    for payload in corpus() {
        let output = clean(&payload);
        let problems = violations(&output);
        if !problems.is_empty() {
            failures.push(format!("{payload:?} → {output:?}: {}", problems.join(", ")));
        }
    }
    assert!(failures.is_empty(), "{} unsafe outputs:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn script_and_style_contents_are_dropped_not_escaped() {
    for payload in [
        "<script>alert(1)</script>",
        "<SCRIPT>alert(1)</SCRIPT>",
        "<style>x{}</style>",
        "<svg><script>alert(1)</script></svg>",
    ] {
        assert_eq!(clean(payload), "", "{payload:?}");
    }
}

#[test]
fn the_checker_itself_spots_markup() {
    // The definition must be able to fail: raw markup is flagged, escaped text is not.
    assert!(!violations("<b>x</b>").is_empty());
    assert!(!violations("<!-- x -->").is_empty());
    assert!(!violations("a & b").is_empty());
    assert!(violations("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;").is_empty());
}

#[test]
fn every_corpus_output_is_a_fixed_point() {
    for payload in corpus() {
        let once = clean(&payload);
        assert_eq!(clean(&once), once, "payload {payload:?}");
    }
}

/// Strings assembled from HTML-ish fragments: the places parsers disagree on.
fn htmlish() -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        Just("<".to_owned()),
        Just(">".to_owned()),
        Just("</".to_owned()),
        Just("<!--".to_owned()),
        Just("-->".to_owned()),
        Just("<![CDATA[".to_owned()),
        Just("]]>".to_owned()),
        Just("&".to_owned()),
        Just("&amp;".to_owned()),
        Just("&lt;".to_owned()),
        Just("&#60;".to_owned()),
        Just("&#x3c".to_owned()),
        Just("\"".to_owned()),
        Just("'".to_owned()),
        Just("=".to_owned()),
        Just(" ".to_owned()),
        Just("\r\n".to_owned()),
        Just("\0".to_owned()),
        Just("\u{202E}".to_owned()),
        Just("script".to_owned()),
        Just("style".to_owned()),
        Just("svg".to_owned()),
        Just("math".to_owned()),
        Just("textarea".to_owned()),
        Just("plaintext".to_owned()),
        Just("onerror".to_owned()),
        Just("javascript:".to_owned()),
        "[a-z]{1,6}",
        "\\PC{1,4}",
    ];
    proptest::collection::vec(fragment, 0..40).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn sanitising_arbitrary_text_is_idempotent_and_safe(input in any::<String>()) {
        let once = clean(&input);
        prop_assert_eq!(clean(&once), once.clone());
        prop_assert!(violations(&once).is_empty(), "{:?} → {:?}", input, once);
    }

    #[test]
    fn sanitising_htmlish_text_is_idempotent_and_safe(input in htmlish()) {
        let once = clean(&input);
        prop_assert_eq!(clean(&once), once.clone());
        prop_assert!(violations(&once).is_empty(), "{:?} → {:?}", input, once);
    }
}
