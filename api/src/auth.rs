//! Passwords (argon2id), access tokens (JWT, HS256 pinned) and the caller's identity.

use crate::error::ApiError;
use crate::state::AppState;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use jobcenter_sql::states::Role;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use uuid::Uuid;

const ISSUER: &str = "jobcenter";
const AUDIENCE: &str = "jobcenter-api";

/// Who is calling, as established by a valid token of an enabled user.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub user_id: Uuid,
    pub role: Role,
    /// The session (`sid`) of the caller's access token; None for an API token.
    pub session: Option<Uuid>,
}

impl Caller {
    /// The owner to scope queries to: None for admins (they see everything).
    pub fn owner_scope(&self) -> Option<Uuid> {
        match self.role {
            Role::Admin => None,
            Role::Developer => Some(self.user_id),
        }
    }

    /// Refuses anyone but an admin: 403 saying `why`.
    pub fn require_admin(&self, why: &'static str) -> Result<(), ApiError> {
        match self.role {
            Role::Admin => Ok(()),
            Role::Developer => Err(ApiError::Forbidden(why)),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    iss: String,
    aud: String,
    iat: u64,
    exp: u64,
    /// The user's session generation when issued (absent: 0, tokens from before).
    #[serde(default)]
    gen: i32,
    /// This session's id (one per login).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<Uuid>,
}

/// What a valid access token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub user_id: Uuid,
    pub generation: i32,
    pub id: Option<Uuid>,
}

impl Session {
    /// Whether the user's sessions still include this one: its generation is the
    /// current one, or it is the session kept by the user's own password change.
    pub fn is_current(&self, generation: i32, kept: Option<Uuid>) -> bool {
        self.generation == generation || (self.id.is_some() && self.id == kept)
    }
}

/// One HS256 key and the `kid` that names it in token headers.
struct JwtKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl JwtKey {
    fn new(secret: &[u8]) -> Self {
        JwtKey {
            kid: kid_for(secret),
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }
}

/// The `kid` of a secret: a short fingerprint (the first 8 bytes of its SHA-256, hex),
/// so that nodes sharing a secret agree on it without configuring names.
pub fn kid_for(secret: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(secret)[..8])
}

/// The signing key and, during a rotation, the previous one (verification only).
pub struct JwtKeys {
    current: JwtKey,
    previous: Option<JwtKey>,
    validation: Validation,
}

impl JwtKeys {
    pub fn new(secret: &[u8], previous: Option<&[u8]>) -> Self {
        // The algorithm is ours, never the token's: only HS256 is accepted, so `none`
        // and public-key confusion are refused before any key is looked at.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = 5;
        JwtKeys {
            current: JwtKey::new(secret),
            previous: previous.map(JwtKey::new),
            validation,
        }
    }

    /// A new session's access token for a user at session generation `generation`.
    pub fn issue(&self, user_id: Uuid, generation: i32, ttl: Duration) -> Result<String, ApiError> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: user_id,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now,
            exp: now + ttl.as_secs(),
            gen: generation,
            sid: Some(Uuid::new_v4()),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.current.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.current.encoding).map_err(ApiError::internal)
    }

    fn verify(&self, token: &str) -> Result<Session, ApiError> {
        let invalid = || ApiError::Unauthorized("invalid or expired token");
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
        if header.alg != Algorithm::HS256 {
            return Err(invalid());
        }
        let key = [Some(&self.current), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|key| header.kid.as_deref() == Some(key.kid.as_str()))
            .ok_or_else(invalid)?;
        let claims = jsonwebtoken::decode::<Claims>(token, &key.decoding, &self.validation)
            .map_err(|_| invalid())?
            .claims;
        // A token issued in the future was not issued by us (or our clock is off).
        if claims.iat > jsonwebtoken::get_current_timestamp() + self.validation.leeway {
            return Err(invalid());
        }
        Ok(Session {
            user_id: claims.sub,
            generation: claims.gen,
            id: claims.sid,
        })
    }
}

/// API tokens start with this, which tells them apart from JWTs.
pub const API_TOKEN_PREFIX: &str = "jc_";

/// A new API token (shown once) and the SHA-256 hex under which it is stored.
pub fn new_api_token() -> (String, String) {
    let token = format!("{API_TOKEN_PREFIX}{}", random_alphanumeric(43));
    let digest = api_token_digest(&token);
    (token, digest)
}

pub fn api_token_digest(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// `len` random characters from [A-Za-z0-9] (5.95 bits each) from the OS-seeded CSPRNG.
pub fn random_alphanumeric(len: usize) -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric.sample_string(&mut rand::thread_rng(), len)
}

pub fn hash_password(password: &str) -> Result<String, ApiError> {
    // Argon2::default() is argon2id v19, m=19 MiB, t=2, p=1: OWASP's recommendation.
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| ApiError::Internal(e.to_string().into()))
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Runs argon2 off the async executor: it costs tens of milliseconds of CPU.
pub async fn verify_password_blocking(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .unwrap_or(false)
}

/// Resolves a bearer token (an access token or an API token) to an enabled user. An API
/// token is checked against the database on every request, an access token's user too
/// unless it was read in the last seconds (see `auth_cache`: any change of a user makes
/// every API process forget). So a disabled or deleted user's tokens, and a revoked API
/// token, stop working at once on the API node that made the change, and on the others
/// once the database's notification reaches them.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    if token.starts_with(API_TOKEN_PREFIX) {
        let client = state.pool.get().await?;
        let found =
            jobcenter_sql::api_tokens::authenticate(&client, &api_token_digest(token)).await?;
        let (user_id, role, _token_id) = found.ok_or(ApiError::Unauthorized(
            "invalid, expired or revoked API token",
        ))?;
        return Ok(Caller {
            user_id,
            role,
            session: None,
        });
    }
    let session = state.jwt.verify(token)?;
    let user_id = session.user_id;
    let expired = || ApiError::Unauthorized("invalid or expired token");
    let now = std::time::Instant::now();
    let lookups = &state.metrics.auth_lookups;
    if let Some(known) = state.auth_cache.get(user_id, now) {
        lookups.with_label_values(&["cache"]).inc();
        if !session.is_current(known.generation, known.kept_session) {
            return Err(expired());
        }
        return Ok(Caller {
            user_id,
            role: known.role,
            session: session.id,
        });
    }
    lookups.with_label_values(&["database"]).inc();
    let ticket = state.auth_cache.ticket();
    let client = state.pool.get().await?;
    match jobcenter_sql::users::by_id(&client, user_id).await? {
        Some(user) if !user.disabled => {
            let known = crate::auth_cache::Known {
                role: user.role,
                generation: user.session_generation,
                kept_session: user.kept_session,
            };
            state.auth_cache.remember(ticket, user.id, known, now);
            if !session.is_current(known.generation, known.kept_session) {
                return Err(expired());
            }
            Ok(Caller {
                user_id: user.id,
                role: user.role,
                session: session.id,
            })
        }
        _ => Err(expired()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_round_trip_as_argon2id() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn tokens_are_pinned_to_hs256_and_our_audience() {
        let keys = JwtKeys::new(&[7u8; 32], None);
        let user = Uuid::new_v4();
        let token = keys.issue(user, 0, Duration::from_secs(60)).unwrap();
        assert_eq!(keys.verify(&token).unwrap().user_id, user);
        let other = JwtKeys::new(&[8u8; 32], None);
        assert!(other.verify(&token).is_err());
        // An unsigned token claiming alg "none" is refused.
        let header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
        let body = token.split('.').nth(1).unwrap();
        assert!(keys.verify(&format!("{header}.{body}.")).is_err());
    }

    #[test]
    fn rotation_accepts_the_previous_key_by_kid_and_signs_with_the_new_one() {
        let old = JwtKeys::new(&[1u8; 32], None);
        let rotated = JwtKeys::new(&[2u8; 32], Some(&[1u8; 32]));
        let user = Uuid::new_v4();
        let old_token = old.issue(user, 0, Duration::from_secs(60)).unwrap();
        assert_eq!(rotated.verify(&old_token).unwrap().user_id, user);
        let new_token = rotated.issue(user, 0, Duration::from_secs(60)).unwrap();
        let header = jsonwebtoken::decode_header(&new_token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(kid_for(&[2u8; 32]).as_str()));
        assert!(
            old.verify(&new_token).is_err(),
            "old nodes do not know the new key"
        );
        // Once the previous secret is dropped, its tokens stop working.
        let after = JwtKeys::new(&[2u8; 32], None);
        assert!(after.verify(&old_token).is_err());
        assert_eq!(after.verify(&new_token).unwrap().user_id, user);
    }

    #[test]
    fn api_tokens_are_random_and_stored_as_sha256() {
        let (a, digest) = new_api_token();
        let (b, _) = new_api_token();
        assert_ne!(a, b);
        assert!(a.starts_with(API_TOKEN_PREFIX) && a.len() == 46, "{a}");
        assert_eq!(digest, api_token_digest(&a));
        assert_eq!(digest.len(), 64);
    }
}
