//! Attack corpora against authentication: forged, tampered and malformed access tokens are
//! refused with 401 on REST and before the WebSocket upgrade (header and `?token=`), while a
//! correctly signed control token is accepted — so the corpus can fail.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::helpers::{Backend, TestApp};

/// The server's real HS256 secret, issuer and audience (set explicitly, not the defaults).
const SECRET: &str = "attack-corpus-secret-3f1c9b7e5d2a4c6e8f0a1b3c5d7e9f";
const ISSUER: &str = "corpus-issuer";
const AUDIENCE: &str = "corpus-audience";

/// A throw-away RSA key made for this corpus (never used anywhere else).
const RSA_PRIVATE_PEM: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCkq5PVb/RU1ONk\n\
0zdELsH26uUqOCBpSUc2n2llxaBy8gSie3f4sgKOuujmN2PpZU6hLHI/hGfSC6OA\n\
hAypva2rZqefct+FscpVneBRPN/RRVYMi3UMVXj1A/gsPnLKMaw30Qedd3VCkke0\n\
b293cn2gxrTQP4ZQLsjHnWKu61Ruz0LPZ12to7G5wbPuDvt7ZAkZdN98eWBTsc2K\n\
MA/sylpAS8Bt51lANGNJ8jtiXC8AncRopOV4YDLf3A03ltMpJ1OHsUXYMaWfwYbb\n\
DJ3D17DYdD5uEi7I7aYcECSnECtF+YYhzdIkhAwFZWqma76p0qb2Mx42ArFJJhGv\n\
e8iSMwdBAgMBAAECggEAJgSZ+0lfePV0sYrFQ/finsoREhwGuaAqMZ2A1TcZKeif\n\
8s58Pp4EkqTrD/nCVrilvHbZQrpkSN2YiFuUW90Xu06WTS0Vl5WaYAV07HSYPQXb\n\
zcYlxiz2oeTid36MfIuW1gUr06pol2/T37/plYOIpyWxSbIc5abDgriet8FLy1Au\n\
VmclLHX6w+FKytkxDQ133BhUvmqDA+bR1LL8gIiZOhXKuZGwyM+3vscCu6ncY/n6\n\
JDCqMsTSSc86rlwcCLvNCmqR5y12bZlu5exm1YNgkqSnT6xVJEkNH7fpQFWXiD8P\n\
kOPlEYh0UwAFN7oecHtEcnqeJ0iDdJAJ3WIt/Bu8RQKBgQDW2Ucm+jUs3JJI90br\n\
wwkfd+d8UwXQqapSwAG+lMUDtkcmi1PfqS4WcC8wsKmlRcapb+bPSvtEAzWZhd4R\n\
FI/fxE7K17zgHbmNZZziRKqHmEvgXXJUblIx3tcxyRZlQyMsdIdFKfq7hSzQYcDx\n\
KgFEIE/qKLWkFQ8j5VMXdpl3ZQKBgQDENeLWiOCbAVCvvgn+MjlFMlbYyuk/fFD9\n\
VWukZUM8mVIxBbS6Vd1TQBoKQWlg5wF8ZeD4vkgJ0PIw2nzg8ZWZYR29qdYeVjvk\n\
GcaiKnzyQ04YAWlhaeC1xnl7tJB7wFOPSCrMuRE0DVEreRTVHHkxGO2+9/egdVWT\n\
3qfiUQ54rQKBgE1rfnhNMVw5H32rnaLXZTIxwvjJ8g5/FSE8j2Rdt6DezkTVcCPo\n\
kvMC+f5RqtAjlLL53/JS0rhvb6Ei3CLLhgzccIgntagNDhAlzaK7m7fA6ZawFcLW\n\
/kd6RZFrJObYipQ6aYRC3Fc2Zi+xChXdTRd/jUyT3uCBtjL5MDgERMkBAoGAeXTB\n\
zfs8zbaqs573oJqGSQc4K0qvx9S0bZ0K3OCyFjjyX9YgYZf1QStU8zQ6fvmAOfj2\n\
ogNnpGvq/8K/up7Q8/jh6B3RpUXMHQ63nnqejXiMRt/Y06wupVcOrDzBk1kiYHdT\n\
xxZoR8hWjoqNEr5lZrb/tE7awkDfkIErezShuKECgYEAmjACSQyIy3wrZWXyvfN6\n\
SdqTzH8AvWCV5D66riTiwToihQn57nFbEvJgY7uN0T3oCMofGTSqUZ5tDeOV7lId\n\
tNCukW8//5/np5MctFp0W2UeT38ppf8W/rvMfeOWK/9T/DApTffWpczcEXOGSoZr\n\
Zetkx+e3Jn6ZAotFQC3O8Xw=\n\
-----END PRIVATE KEY-----\n";

/// Its public half, as an attacker would find it published.
const RSA_PUBLIC_PEM: &str = "\
-----BEGIN PUBLIC KEY-----\n\
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEApKuT1W/0VNTjZNM3RC7B\n\
9urlKjggaUlHNp9pZcWgcvIEont3+LICjrro5jdj6WVOoSxyP4Rn0gujgIQMqb2t\n\
q2ann3LfhbHKVZ3gUTzf0UVWDIt1DFV49QP4LD5yyjGsN9EHnXd1QpJHtG9vd3J9\n\
oMa00D+GUC7Ix51irutUbs9Cz2ddraOxucGz7g77e2QJGXTffHlgU7HNijAP7Mpa\n\
QEvAbedZQDRjSfI7YlwvAJ3EaKTleGAy39wNN5bTKSdTh7FF2DGln8GG2wydw9ew\n\
2HQ+bhIuyO2mHBAkpxArRfmGIc3SJIQMBWVqpmu+qdKm9jMeNgKxSSYRr3vIkjMH\n\
QQIDAQAB\n\
-----END PUBLIC KEY-----\n";

/// One refused case: the `Authorization` scheme to send and the token.
struct Attack {
    name: &'static str,
    scheme: &'static str,
    token: String,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Claims that the server accepts for `sub`, as the server itself would issue them.
fn good_claims(sub: &str) -> Value {
    let now = now();
    json!({"sub": sub, "iat": now, "nbf": now, "exp": now + 600, "iss": ISSUER, "aud": AUDIENCE, "jti": "corpus"})
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, key).expect("token signs")
}

fn hs256(claims: &Value) -> String {
    sign(Algorithm::HS256, &EncodingKey::from_secret(SECRET.as_bytes()), claims)
}

/// `claims` with `edit` applied.
fn with(sub: &str, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut claims = good_claims(sub);
    edit(claims.as_object_mut().expect("object"));
    claims
}

/// An unsigned token with the given `alg` header value.
fn unsigned(alg: &str, claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": alg, "typ": "JWT"}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.")
}

/// `token` with one bit of its signature's first byte flipped.
fn flip_signature_bit(token: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let (signed, signature) = token.rsplit_once('.').expect("three parts");
    let mut sig = signature.as_bytes().to_vec();
    let index = ALPHABET.iter().position(|&c| c == sig[0]).expect("base64url");
    // The first character carries the top six bits of the first byte: toggling its lowest
    // bit flips bit 2 of signature byte 0.
    sig[0] = ALPHABET[index ^ 1];
    format!("{signed}.{}", String::from_utf8(sig).expect("ascii"))
}

fn corpus(sub: &str) -> Vec<Attack> {
    let good = hs256(&good_claims(sub));
    let secret = EncodingKey::from_secret(SECRET.as_bytes());
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE_PEM.as_bytes()).expect("rsa key");
    let attack = |name, token| Attack { name, scheme: "Bearer", token };
    let mut padded = good_claims(sub);
    padded["pad"] = Value::String("x".repeat(10 * 1024));
    let mut whitespace_inside = good.clone();
    whitespace_inside.insert(good.len() / 2, ' ');
    vec![
        attack("alg none", unsigned("none", &good_claims(sub))),
        attack("alg None", unsigned("None", &good_claims(sub))),
        attack("alg none with the real signature kept", {
            let none = unsigned("none", &good_claims(sub));
            format!("{none}{}", good.rsplit_once('.').expect("parts").1)
        }),
        attack("wrong key", sign(Algorithm::HS256, &EncodingKey::from_secret(&[7; 48]), &good_claims(sub))),
        attack("RS256 signed with an RSA key", sign(Algorithm::RS256, &rsa, &good_claims(sub))),
        attack(
            "HS256 keyed with the public key text",
            sign(Algorithm::HS256, &EncodingKey::from_secret(RSA_PUBLIC_PEM.as_bytes()), &good_claims(sub)),
        ),
        attack("HS384 with the real secret", sign(Algorithm::HS384, &secret, &good_claims(sub))),
        attack("HS512 with the real secret", sign(Algorithm::HS512, &secret, &good_claims(sub))),
        attack(
            "expired",
            hs256(&with(sub, |c| {
                c.insert("exp".into(), json!(now() - 3600));
                c.insert("iat".into(), json!(now() - 7200));
                c.insert("nbf".into(), json!(now() - 7200));
            })),
        ),
        attack("exp as a string", hs256(&with(sub, |c| drop(c.insert("exp".into(), json!("99999999999")))))),
        attack("missing exp", hs256(&with(sub, |c| drop(c.remove("exp"))))),
        attack("missing aud", hs256(&with(sub, |c| drop(c.remove("aud"))))),
        attack("wrong aud", hs256(&with(sub, |c| drop(c.insert("aud".into(), json!("another-api")))))),
        attack("aud list without ours", hs256(&with(sub, |c| drop(c.insert("aud".into(), json!(["x", "y"])))))),
        attack("missing iss", hs256(&with(sub, |c| drop(c.remove("iss"))))),
        attack("wrong iss", hs256(&with(sub, |c| drop(c.insert("iss".into(), json!("evil-issuer")))))),
        attack("missing sub", hs256(&with(sub, |c| drop(c.remove("sub"))))),
        attack("non-UUID sub", hs256(&with(sub, |c| drop(c.insert("sub".into(), json!("admin")))))),
        attack("numeric sub", hs256(&with(sub, |c| drop(c.insert("sub".into(), json!(1)))))),
        attack("nbf in the future", hs256(&with(sub, |c| drop(c.insert("nbf".into(), json!(now() + 3600)))))),
        attack("flipped signature bit", flip_signature_bit(&good)),
        attack("signature removed", format!("{}.", good.rsplit_once('.').expect("parts").0)),
        attack("truncated", good[..good.len() - 5].to_owned()),
        attack("two parts", good.rsplit_once('.').expect("parts").0.to_owned()),
        attack("garbage", "not-a-jwt-at-all".to_owned()),
        attack("garbage in three parts", "a.b.c".to_owned()),
        attack("empty", String::new()),
        attack("10 KB token, correctly signed", hs256(&padded)),
        attack("whitespace only", "  \t ".to_owned()),
        attack("whitespace inside a valid token", whitespace_inside),
        Attack { name: "lowercase bearer with a bad token", scheme: "bearer", token: "garbage.token.here".to_owned() },
        Attack { name: "Basic scheme with a valid token", scheme: "Basic", token: good.clone() },
    ]
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn query_escape(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The REST status of `GET path` with `Authorization: {scheme} {token}`.
async fn rest_status(app: &TestApp, path: &str, scheme: &str, token: &str) -> (u16, Value) {
    let res = app
        .client
        .request(Method::GET, format!("{}{path}", app.base))
        .header("authorization", format!("{scheme} {token}"))
        .send()
        .await
        .expect("request sent");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// `Ok(())` when the upgrade succeeded, else the refusal's HTTP status.
async fn ws_upgrade(app: &TestApp, header: Option<String>, token_query: Option<&str>) -> Result<(), u16> {
    let mut url = format!("{}/chat/ws", app.base.replace("http://", "ws://"));
    if let Some(token) = token_query {
        url = format!("{url}?token={}", query_escape(token));
    }
    let mut request = url.into_client_request().expect("request");
    if let Some(header) = header {
        request.headers_mut().insert("authorization", HeaderValue::from_str(&header).expect("header value"));
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => Ok(()),
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => Err(res.status().as_u16()),
        Err(other) => panic!("unexpected WebSocket failure: {other}"),
    }
}

async fn spawn() -> TestApp {
    TestApp::spawn_with(Backend::Sqlite, &[("JWT_SECRET", SECRET), ("JWT_ISSUER", ISSUER), ("JWT_AUDIENCE", AUDIENCE)])
        .await
        .expect("sqlite")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correctly_signed_control_token_is_accepted_everywhere() {
    let app = spawn().await;
    let victim = app.register("victim").await;
    let control = hs256(&good_claims(&victim.id.to_string()));
    for path in ["/auth/me", "/workspaces"] {
        let (status, body) = rest_status(&app, path, "Bearer", &control).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    assert_eq!(rest_status(&app, "/auth/me", "Bearer", &control).await.1["id"], victim.id.to_string());
    assert_eq!(ws_upgrade(&app, Some(format!("Bearer {control}")), None).await, Ok(()));
    assert_eq!(ws_upgrade(&app, None, Some(&control)).await, Ok(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_malformed_tokens_are_refused_on_rest_and_before_the_upgrade() {
    let app = spawn().await;
    let victim = app.register("victim").await;
    let mut failures = Vec::new();
    for attack in corpus(&victim.id.to_string()) {
        for path in ["/auth/me", "/workspaces"] {
            let (status, body) = rest_status(&app, path, attack.scheme, &attack.token).await;
            if status != 401 || body["error"]["code"] != "unauthorized" {
                failures.push(format!("{}: GET {path} answered {status} {body}", attack.name));
            }
        }
        let header = format!("{} {}", attack.scheme, attack.token);
        let refused = ws_upgrade(&app, Some(header), None).await;
        if refused != Err(401) {
            failures.push(format!("{}: the upgrade with the header answered {refused:?}", attack.name));
        }
        if attack.scheme == "Bearer" {
            let refused = ws_upgrade(&app, None, Some(&attack.token)).await;
            if refused != Err(401) {
                failures.push(format!("{}: the upgrade with ?token= answered {refused:?}", attack.name));
            }
        }
    }
    assert!(failures.is_empty(), "accepted or mis-answered:\n{}", failures.join("\n"));
}
