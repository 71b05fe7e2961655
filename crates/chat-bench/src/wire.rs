//! The frames the generator writes and the little it reads back, for the three servers it
//! drives: ours (SPEC.md §3 JSON frames), the bare broadcast server (any text, echoed to the
//! room) and the Socket.IO peer (Engine.IO v4 `42[…]` packets).
//!
//! The hot path reads as little as it can: a received frame is classified by its first bytes,
//! and a delivery's send time is found by one `memmem` search for the content marker
//! `"content":"bt` followed by a 4-digit step and a 20-digit send time (ns since the
//! generator's epoch). No JSON parsing, no allocation.

use memchr::memmem;

/// Which server a connection talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Our `chat-server`.
    Ours,
    /// `chat-bench bare-server`.
    Bare,
    /// The Node Socket.IO peer.
    SocketIo,
}

impl Protocol {
    /// A short name for tables.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ours => "ours",
            Self::Bare => "bare",
            Self::SocketIo => "socketio",
        }
    }
}

/// Content length of every benchmark message, in bytes (issue 5: 100-byte messages).
pub const CONTENT_LEN: usize = 100;
const MARKER: &[u8] = b"\"content\":\"bt";
const STEP_DIGITS: usize = 4;
const TIME_DIGITS: usize = 20;

/// A benchmark message's content: `bt`, the step, the send time, then filler up to
/// [`CONTENT_LEN`]. Plain ASCII letters and digits, so sanitising leaves it unchanged.
#[must_use]
pub fn content(step: u32, sent_ns: u64) -> String {
    let mut s = format!("bt{:0sw$}{:0tw$}", step % 10_000, sent_ns, sw = STEP_DIGITS, tw = TIME_DIGITS);
    while s.len() < CONTENT_LEN {
        s.push('x');
    }
    s
}

/// The frame that sends one message into `conversation`.
#[must_use]
pub fn send_frame(protocol: Protocol, conversation: &str, content: &str, ack_id: u64) -> String {
    match protocol {
        Protocol::Ours => {
            format!(r#"{{"event":"send_message","data":{{"conversationId":"{conversation}","content":"{content}"}}}}"#)
        }
        Protocol::Bare => format!(r#"{{"event":"message:new","data":{{"content":"{content}"}}}}"#),
        Protocol::SocketIo => {
            format!(r#"42{ack_id}["send_message",{{"conversationId":"{conversation}","content":"{content}"}}]"#)
        }
    }
}

/// What a received text frame is, as far as the generator cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A benchmark message pushed to this connection.
    Delivery {
        /// The step it was sent in.
        step: u32,
        /// Its send time, ns since the generator's epoch.
        sent_ns: u64,
    },
    /// An acknowledgement of one of this connection's sends; with the send time when the ack
    /// carries the message (ours).
    Ack(Option<(u32, u64)>),
    /// An error frame.
    Error,
    /// An Engine.IO ping (`2`), to be answered with `3`.
    Ping,
    /// Anything else (presence, acks of joins…).
    Other,
}

/// Finds the marker and reads the step and send time after it.
#[must_use]
pub fn stamp(frame: &[u8]) -> Option<(u32, u64)> {
    let at = memmem::find(frame, MARKER)? + MARKER.len();
    let digits = frame.get(at..at + STEP_DIGITS + TIME_DIGITS)?;
    let number = |d: &[u8]| -> Option<u64> {
        d.iter().try_fold(0_u64, |acc, &b| b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0')))
    };
    let step = u32::try_from(number(&digits[..STEP_DIGITS])?).ok()?;
    Some((step, number(&digits[STEP_DIGITS..])?))
}

/// Classifies a received text frame.
#[must_use]
pub fn classify(protocol: Protocol, frame: &[u8]) -> Incoming {
    let delivery = |f: &[u8]| stamp(f).map_or(Incoming::Other, |(step, sent_ns)| Incoming::Delivery { step, sent_ns });
    match protocol {
        Protocol::Ours => {
            if frame.starts_with(br#"{"event":"message:new""#) {
                delivery(frame)
            } else if frame.starts_with(br#"{"event":"ack""#) {
                Incoming::Ack(stamp(frame))
            } else if frame.starts_with(br#"{"event":"error""#) {
                Incoming::Error
            } else {
                Incoming::Other
            }
        }
        Protocol::Bare => delivery(frame),
        Protocol::SocketIo => {
            if frame == b"2" {
                Incoming::Ping
            } else if frame.starts_with(br#"42["message:new""#) {
                delivery(frame)
            } else if frame.starts_with(b"43") {
                Incoming::Ack(None)
            } else if frame.starts_with(b"44") {
                Incoming::Error
            } else {
                Incoming::Other
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_fixed_length_ascii_and_carries_its_stamp() {
        let c = content(7, 123_456_789);
        assert_eq!(c.len(), CONTENT_LEN);
        assert!(c.bytes().all(|b| b.is_ascii_alphanumeric()));
        let pushed = format!(r#"{{"event":"message:new","data":{{"message":{{"seq":3,"content":"{c}"}}}}}}"#);
        assert_eq!(stamp(pushed.as_bytes()), Some((7, 123_456_789)));
        assert_eq!(stamp(br#"{"content":"bt12"}"#), None, "truncated");
        assert_eq!(stamp(br#"{"content":"hello"}"#), None);
    }

    #[test]
    fn our_frames_are_told_apart_by_their_event() {
        let c = content(2, 99);
        let push =
            format!(r#"{{"event":"message:new","data":{{"message":{{"content":"{c}"}},"conversationId":"x"}}}}"#);
        assert_eq!(classify(Protocol::Ours, push.as_bytes()), Incoming::Delivery { step: 2, sent_ns: 99 });
        let ack = format!(r#"{{"event":"ack","data":{{"content":"{c}"}}}}"#);
        assert_eq!(classify(Protocol::Ours, ack.as_bytes()), Incoming::Ack(Some((2, 99))));
        assert_eq!(classify(Protocol::Ours, br#"{"event":"ack","ref":"j","data":{}}"#), Incoming::Ack(None));
        let err = br#"{"event":"error","data":{"code":"rate_limited","message":"slow down"}}"#;
        assert_eq!(classify(Protocol::Ours, err), Incoming::Error);
        assert_eq!(classify(Protocol::Ours, br#"{"event":"presence_update","data":{}}"#), Incoming::Other);
    }

    #[test]
    fn the_send_frames_are_what_each_server_expects() {
        let c = content(1, 5);
        let ours = send_frame(Protocol::Ours, "abc", &c, 0);
        let v: serde_json::Value = serde_json::from_str(&ours).expect("json");
        assert_eq!(v["event"], "send_message");
        assert_eq!(v["data"]["conversationId"], "abc");
        assert_eq!(v["data"]["content"], c.as_str());
        // The bare server echoes the frame as it is: it must classify as a delivery.
        let bare = send_frame(Protocol::Bare, "abc", &c, 0);
        assert_eq!(classify(Protocol::Bare, bare.as_bytes()), Incoming::Delivery { step: 1, sent_ns: 5 });
        let sio = send_frame(Protocol::SocketIo, "abc", &c, 17);
        assert!(sio.starts_with("4217[\"send_message\","));
        let v: serde_json::Value = serde_json::from_str(&sio[4..]).expect("json array");
        assert_eq!(v[1]["content"], c.as_str());
    }

    #[test]
    fn socket_io_packets_are_classified() {
        assert_eq!(classify(Protocol::SocketIo, b"2"), Incoming::Ping);
        let c = content(3, 42);
        let push = format!(r#"42["message:new",{{"id":"1","content":"{c}"}}]"#);
        assert_eq!(classify(Protocol::SocketIo, push.as_bytes()), Incoming::Delivery { step: 3, sent_ns: 42 });
        assert_eq!(classify(Protocol::SocketIo, br#"431[{"id":"m"}]"#), Incoming::Ack(None));
        assert_eq!(classify(Protocol::SocketIo, br#"44{"message":"bad token"}"#), Incoming::Error);
        assert_eq!(classify(Protocol::SocketIo, br#"40{"sid":"x"}"#), Incoming::Other);
    }
}
