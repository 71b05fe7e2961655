//! The WebSocket frame parser: any text either decodes for a known event or is answered with
//! `bad_request` / `validation_failed` — never a panic, never another code.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match chat_http::gateway::decode_client_frame(text) {
        Ok(event) => {
            assert!(chat_protocol::ws::client::ALL.contains(&event.as_str()), "decoded unknown event {event:?}")
        }
        Err(code) => assert!(matches!(code, "bad_request" | "validation_failed"), "unexpected code {code}"),
    }
});
