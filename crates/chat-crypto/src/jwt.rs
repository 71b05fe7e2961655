//! Access tokens (HS256 JWTs) and refresh tokens: [`JwtIssuer`].

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chat_domain::error::RepoError;
use chat_domain::ids::UserId;
use chat_domain::user::{AccessToken, RefreshSecret, TokenDigest, TokenIssuer};
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::rand::SystemRandom;
use secrecy::zeroize::Zeroizing;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::fill_random;

/// Shortest HS256 secret accepted, in bytes (the size of the HMAC-SHA-256 output).
pub const MIN_HS256_SECRET_LEN: usize = 32;

/// Longest access-token lifetime accepted (SPEC §4).
pub const MAX_ACCESS_TTL: chrono::Duration = chrono::Duration::minutes(15);

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 30;

/// Length of a refresh token's random part, in bytes.
pub const REFRESH_TOKEN_BYTES: usize = 32;

/// Longer bearer strings are refused before any parsing (ours are about 300 bytes).
const MAX_TOKEN_LEN: usize = 4096;

/// Why a [`JwtIssuer`] could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwtConfigError {
    /// The HS256 secret is shorter than [`MIN_HS256_SECRET_LEN`].
    #[error("the JWT secret must be at least {MIN_HS256_SECRET_LEN} bytes (got {0})")]
    SecretTooShort(usize),
    /// The access-token lifetime is not positive or exceeds [`MAX_ACCESS_TTL`].
    #[error("the access-token lifetime must be between 1 second and 15 minutes")]
    TtlOutOfRange,
    /// The issuer or the audience is empty.
    #[error("the JWT {0} must not be empty")]
    EmptyClaim(&'static str),
}

/// What we sign.
#[derive(Serialize)]
struct Claims<'a> {
    sub: String,
    iat: i64,
    nbf: i64,
    exp: i64,
    iss: &'a str,
    aud: &'a str,
    jti: String,
}

/// What we read back once the library has checked signature, algorithm, `exp`, `nbf`, `iss`
/// and `aud`.
#[derive(Deserialize)]
struct Subject {
    sub: String,
}

/// Issues and verifies HS256 access tokens and mints refresh tokens.
///
/// Access tokens carry `sub` (the user's uuid), `iat`, `nbf`, `exp`, `iss`, `aud` and a random
/// `jti`. Verification accepts exactly HS256 (never `none`, never another algorithm even with
/// the same secret), requires `exp`, `nbf`, `iss`, `aud` and `sub`, checks `iss` and `aud`
/// against the configured values and allows [`LEEWAY_SECS`] of clock skew; anything else is
/// `None`. Refresh tokens are 32 random bytes in unpadded base64url; the store keeps only their
/// SHA-256 digest.
pub struct JwtIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    header: Header,
    validation: Validation,
    issuer: String,
    audience: String,
    access_ttl: chrono::Duration,
    rng: SystemRandom,
}

impl JwtIssuer {
    /// An HS256 issuer (`JWT_SECRET`, `JWT_ISSUER`, `JWT_AUDIENCE`). The keys are built once,
    /// here.
    ///
    /// # Errors
    /// [`JwtConfigError`] when the secret is shorter than 32 bytes, the lifetime is not in
    /// (0, 15 min], or the issuer or audience is empty.
    pub fn hs256(
        secret: &[u8],
        issuer: impl Into<String>,
        audience: impl Into<String>,
        access_ttl: chrono::Duration,
    ) -> Result<Self, JwtConfigError> {
        if secret.len() < MIN_HS256_SECRET_LEN {
            return Err(JwtConfigError::SecretTooShort(secret.len()));
        }
        if access_ttl < chrono::Duration::seconds(1) || access_ttl > MAX_ACCESS_TTL {
            return Err(JwtConfigError::TtlOutOfRange);
        }
        let (issuer, audience) = (issuer.into(), audience.into());
        if issuer.is_empty() {
            return Err(JwtConfigError::EmptyClaim("issuer"));
        }
        if audience.is_empty() {
            return Err(JwtConfigError::EmptyClaim("audience"));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.set_issuer(&[&issuer]);
        validation.set_audience(&[&audience]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.leeway = LEEWAY_SECS;
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            header: Header::new(Algorithm::HS256),
            validation,
            issuer,
            audience,
            access_ttl,
            rng: SystemRandom::new(),
        })
    }

    /// How long an access token lives.
    #[must_use]
    pub fn access_ttl(&self) -> chrono::Duration {
        self.access_ttl
    }

    fn random_url_token(&self, len: usize) -> Result<Zeroizing<String>, RepoError> {
        let mut bytes = Zeroizing::new(vec![0_u8; len]);
        fill_random(&self.rng, &mut bytes).map_err(|e| RepoError::new("generating a token failed", e))?;
        Ok(Zeroizing::new(URL_SAFE_NO_PAD.encode(&*bytes)))
    }
}

impl fmt::Debug for JwtIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtIssuer")
            .field("algorithm", &self.header.alg)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("access_ttl", &self.access_ttl)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer for JwtIssuer {
    #[tracing::instrument(skip_all, fields(user = %user))]
    fn issue_access_token(&self, user: UserId, now: DateTime<Utc>) -> Result<AccessToken, RepoError> {
        let iat = now.timestamp();
        let exp = iat + self.access_ttl.num_seconds();
        let expires_at = DateTime::from_timestamp(exp, 0).ok_or(RepoError::msg("token expiry is out of range"))?;
        let claims = Claims {
            sub: user.to_string(),
            iat,
            nbf: iat,
            exp,
            iss: &self.issuer,
            aud: &self.audience,
            jti: self.random_url_token(16)?.to_string(),
        };
        let token = jsonwebtoken::encode(&self.header, &claims, &self.encoding)
            .map_err(|e| RepoError::new("signing an access token failed", e))?;
        Ok(AccessToken { token, expires_at })
    }

    fn verify_access_token(&self, token: &str) -> Option<UserId> {
        if token.len() > MAX_TOKEN_LEN {
            tracing::debug!("access token refused: too long");
            return None;
        }
        match jsonwebtoken::decode::<Subject>(token, &self.decoding, &self.validation) {
            Ok(data) => Uuid::parse_str(&data.claims.sub).ok().map(UserId::from_uuid),
            Err(err) => {
                // The kind only (expired, bad signature …), never the token.
                tracing::debug!(reason = ?err.kind(), "access token refused");
                None
            }
        }
    }

    fn new_refresh_token(&self) -> Result<RefreshSecret, RepoError> {
        let token = self.random_url_token(REFRESH_TOKEN_BYTES)?;
        let digest = self.digest_refresh_token(&token);
        Ok(RefreshSecret { token: token.to_string(), digest })
    }

    fn digest_refresh_token(&self, token: &str) -> TokenDigest {
        TokenDigest(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use chrono::Duration;
    use serde_json::json;

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-secret";
    const ISS: &str = "securerealtime";
    const AUD: &str = "securerealtime-api";

    fn issuer() -> JwtIssuer {
        JwtIssuer::hs256(SECRET, ISS, AUD, Duration::minutes(15)).unwrap()
    }

    /// Signs arbitrary claims with `alg` and `secret`, as a forger holding them could.
    fn forge(alg: Algorithm, secret: &[u8], claims: &serde_json::Value) -> String {
        jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    fn valid_claims(user: UserId) -> serde_json::Value {
        let now = Utc::now().timestamp();
        json!({ "sub": user.to_string(), "iat": now, "nbf": now, "exp": now + 600, "iss": ISS, "aud": AUD, "jti": "x" })
    }

    fn b64(json: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(json.to_string())
    }

    #[test]
    fn an_issued_token_verifies_to_its_subject() {
        let issuer = issuer();
        let user = UserId::generate();
        let now = Utc::now();
        let access = issuer.issue_access_token(user, now).unwrap();
        assert_eq!(issuer.verify_access_token(&access.token), Some(user));
        assert_eq!(access.expires_at.timestamp(), now.timestamp() + 15 * 60);
        assert!(!format!("{access:?}").contains(&access.token));

        // Another instance with the same configuration (another node) accepts it too.
        assert_eq!(self::issuer().verify_access_token(&access.token), Some(user));
        // Two tokens for the same user and second still differ (random jti).
        assert_ne!(issuer.issue_access_token(user, now).unwrap().token, access.token);
    }

    #[test]
    fn an_issued_token_carries_the_documented_claims() {
        let issuer = issuer();
        let user = UserId::generate();
        let now = Utc::now();
        let token = issuer.issue_access_token(user, now).unwrap().token;
        let payload = token.split('.').nth(1).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(claims["sub"], user.to_string());
        assert_eq!(claims["iss"], ISS);
        assert_eq!(claims["aud"], AUD);
        assert_eq!(claims["iat"], now.timestamp());
        assert_eq!(claims["nbf"], now.timestamp());
        assert_eq!(claims["exp"], now.timestamp() + 900);
        assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::HS256);
    }

    #[test]
    fn an_expired_token_is_refused() {
        let issuer = issuer();
        let user = UserId::generate();
        let old = issuer.issue_access_token(user, Utc::now() - Duration::hours(1)).unwrap();
        assert_eq!(issuer.verify_access_token(&old.token), None);
        // Just past expiry but within the leeway is still accepted; beyond it is not.
        let ttl = issuer.access_ttl();
        let within = issuer.issue_access_token(user, Utc::now() - ttl - Duration::seconds(5)).unwrap();
        assert_eq!(issuer.verify_access_token(&within.token), Some(user));
        let beyond = issuer.issue_access_token(user, Utc::now() - ttl - Duration::seconds(60)).unwrap();
        assert_eq!(issuer.verify_access_token(&beyond.token), None);
    }

    #[test]
    fn a_token_not_yet_valid_is_refused() {
        let issuer = issuer();
        let future = issuer.issue_access_token(UserId::generate(), Utc::now() + Duration::minutes(5)).unwrap();
        assert_eq!(issuer.verify_access_token(&future.token), None);
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let other = JwtIssuer::hs256(b"another secret that is long enough!!", ISS, AUD, Duration::minutes(5)).unwrap();
        let token = other.issue_access_token(UserId::generate(), Utc::now()).unwrap().token;
        assert_eq!(issuer().verify_access_token(&token), None);
    }

    #[test]
    fn a_token_for_another_issuer_or_audience_is_refused() {
        let user = UserId::generate();
        let wrong_iss = JwtIssuer::hs256(SECRET, "someone-else", AUD, Duration::minutes(5)).unwrap();
        let wrong_aud = JwtIssuer::hs256(SECRET, ISS, "another-api", Duration::minutes(5)).unwrap();
        for other in [wrong_iss, wrong_aud] {
            let token = other.issue_access_token(user, Utc::now()).unwrap().token;
            assert_eq!(issuer().verify_access_token(&token), None, "{other:?}");
            assert_eq!(other.verify_access_token(&token), Some(user), "the forger's own config accepts it");
        }
    }

    #[test]
    fn an_unsigned_alg_none_token_is_refused() {
        let user = UserId::generate();
        let header = b64(&json!({ "alg": "none", "typ": "JWT" }));
        let payload = b64(&valid_claims(user));
        for token in [format!("{header}.{payload}."), format!("{header}.{payload}")] {
            assert_eq!(issuer().verify_access_token(&token), None, "{token}");
        }
        // The same trick on a genuine token: keep the payload and signature, swap the header.
        let genuine = issuer().issue_access_token(user, Utc::now()).unwrap().token;
        let mut parts = genuine.split('.');
        let (_, payload, signature) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
        assert_eq!(issuer().verify_access_token(&format!("{header}.{payload}.{signature}")), None);
        assert_eq!(issuer().verify_access_token(&format!("{header}.{payload}.")), None);
    }

    #[test]
    fn a_token_with_another_algorithm_is_refused_even_with_the_right_secret() {
        let user = UserId::generate();
        let claims = valid_claims(user);
        assert_eq!(issuer().verify_access_token(&forge(Algorithm::HS256, SECRET, &claims)), Some(user), "control");
        for alg in [Algorithm::HS384, Algorithm::HS512] {
            assert_eq!(issuer().verify_access_token(&forge(alg, SECRET, &claims)), None, "{alg:?}");
        }
    }

    #[test]
    fn a_token_missing_a_required_claim_is_refused() {
        let user = UserId::generate();
        for missing in ["sub", "exp", "nbf", "iss", "aud"] {
            let mut claims = valid_claims(user);
            claims.as_object_mut().unwrap().remove(missing);
            assert_eq!(issuer().verify_access_token(&forge(Algorithm::HS256, SECRET, &claims)), None, "{missing}");
        }
        let mut not_a_uuid = valid_claims(user);
        not_a_uuid["sub"] = json!("admin");
        assert_eq!(issuer().verify_access_token(&forge(Algorithm::HS256, SECRET, &not_a_uuid)), None);
    }

    #[test]
    fn a_tampered_token_is_refused() {
        let issuer = issuer();
        let user = UserId::generate();
        let token = issuer.issue_access_token(user, Utc::now()).unwrap().token;
        let (head, signature) = token.rsplit_once('.').unwrap();

        // A changed signature character (mid-string, so every bit of it counts).
        let mut sig: Vec<u8> = signature.bytes().collect();
        sig[10] = if sig[10] == b'A' { b'B' } else { b'A' };
        let bad_sig = format!("{head}.{}", String::from_utf8(sig).unwrap());
        assert_eq!(issuer.verify_access_token(&bad_sig), None);

        // Another subject pasted into a genuine signature.
        let (header, _) = head.split_once('.').unwrap();
        let swapped = format!("{header}.{}.{signature}", b64(&valid_claims(UserId::generate())));
        assert_eq!(issuer.verify_access_token(&swapped), None);

        assert_eq!(issuer.verify_access_token(&format!("{head}.")), None, "signature stripped");
        assert_eq!(issuer.verify_access_token(&token), Some(user), "control");
    }

    #[test]
    fn garbage_is_refused() {
        let issuer = issuer();
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        for garbage in ["", ".", "..", "a.b.c", "not a token", "eyJhbGciOiJIUzI1NiJ9..", "🦀.🦀.🦀", long.as_str()]
        {
            assert_eq!(issuer.verify_access_token(garbage), None, "{garbage:?}");
        }
    }

    #[test]
    fn weak_configurations_are_refused() {
        let ttl = Duration::minutes(15);
        assert_eq!(JwtIssuer::hs256(&[7; 31], ISS, AUD, ttl).unwrap_err(), JwtConfigError::SecretTooShort(31));
        assert!(JwtIssuer::hs256(&[7; 32], ISS, AUD, ttl).is_ok());
        let too_long = ttl + Duration::seconds(1);
        assert_eq!(JwtIssuer::hs256(SECRET, ISS, AUD, too_long).unwrap_err(), JwtConfigError::TtlOutOfRange);
        assert_eq!(JwtIssuer::hs256(SECRET, ISS, AUD, Duration::zero()).unwrap_err(), JwtConfigError::TtlOutOfRange);
        assert_eq!(JwtIssuer::hs256(SECRET, "", AUD, ttl).unwrap_err(), JwtConfigError::EmptyClaim("issuer"));
        assert_eq!(JwtIssuer::hs256(SECRET, ISS, "", ttl).unwrap_err(), JwtConfigError::EmptyClaim("audience"));
    }

    #[test]
    fn debug_shows_no_secret() {
        let shown = format!("{:?}", issuer());
        assert!(shown.contains("JwtIssuer"));
        assert!(!shown.contains("0123456789abcdef"));
    }

    #[test]
    fn refresh_tokens_are_unique_and_their_digests_stable() {
        let issuer = issuer();
        let mut seen = HashSet::new();
        for _ in 0..100 {
            let refresh = issuer.new_refresh_token().unwrap();
            assert_eq!(refresh.token.len(), 43, "32 bytes in unpadded base64url");
            assert!(refresh.token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            assert_eq!(URL_SAFE_NO_PAD.decode(&refresh.token).unwrap().len(), REFRESH_TOKEN_BYTES);
            assert_eq!(refresh.digest.0.len(), 32);
            assert_eq!(refresh.digest, issuer.digest_refresh_token(&refresh.token));
            assert_eq!(refresh.digest, self::issuer().digest_refresh_token(&refresh.token), "across instances");
            assert!(seen.insert(refresh.token));
        }
        // SHA-256 of the token string, known answer.
        assert_eq!(
            hex::encode(issuer.digest_refresh_token("abc").0),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_ne!(issuer.digest_refresh_token("abc"), issuer.digest_refresh_token("abd"));
    }
}
