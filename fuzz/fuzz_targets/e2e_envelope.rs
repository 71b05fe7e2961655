//! The E2E envelope decoder: no panic; an accepted envelope is kept byte for byte and is a
//! JSON object `{v, senderDevice, recipients}` within 64 KiB.
#![no_main]

use chat_domain::message::MessageBody;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(body) = MessageBody::envelope(text.to_owned()) {
        assert_eq!(body.as_str(), text);
        assert!(text.len() <= MessageBody::MAX_ENVELOPE_BYTES);
        let value: serde_json::Value = serde_json::from_str(text).expect("accepted envelopes are JSON");
        let object = value.as_object().expect("accepted envelopes are objects");
        assert!(object.contains_key("v") && object.contains_key("senderDevice") && object.contains_key("recipients"));
    }
});
