//! The content sanitiser: idempotent, and nothing it returns holds a raw `<` or `>` (no tag can
//! survive), nor a bidi-override control or NUL.
#![no_main]

use chat_domain::cipher::ContentSanitizer;
use chat_domain::text::is_bidi_control;
use chat_http::sanitize::AmmoniaSanitizer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    thread_local! {
        static SANITIZER: AmmoniaSanitizer = AmmoniaSanitizer::default();
    }
    SANITIZER.with(|s| {
        let once = s.sanitize(text);
        assert!(!once.contains(['<', '>']), "raw < or > in {once:?} from {text:?}");
        assert!(!once.chars().any(|c| is_bidi_control(c) || c == '\0'), "control survived in {once:?}");
        let twice = s.sanitize(&once);
        assert_eq!(once, twice, "not idempotent on {text:?}");
    });
});
