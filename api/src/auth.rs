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
}

impl Caller {
    /// The owner to scope queries to: None for admins (they see everything).
    pub fn owner_scope(&self) -> Option<Uuid> {
        match self.role {
            Role::Admin => None,
            Role::Developer => Some(self.user_id),
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
}

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl JwtKeys {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = 5;
        JwtKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    pub fn issue(&self, user_id: Uuid, ttl: Duration) -> Result<String, ApiError> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: user_id,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now,
            exp: now + ttl.as_secs(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(ApiError::internal)
    }

    fn verify(&self, token: &str) -> Result<Uuid, ApiError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims.sub)
            .map_err(|_| ApiError::Unauthorized("invalid or expired token"))
    }
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

/// Resolves a bearer token to an enabled user. Checked against the database on every
/// request, so a disabled or deleted user's tokens stop working at once.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    let user_id = state.jwt.verify(token)?;
    let client = state.pool.get().await?;
    match jobcenter_sql::users::by_id(&client, user_id).await? {
        Some(user) if !user.disabled => Ok(Caller {
            user_id: user.id,
            role: user.role,
        }),
        _ => Err(ApiError::Unauthorized("invalid or expired token")),
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
        let keys = JwtKeys::new(&[7u8; 32]);
        let user = Uuid::new_v4();
        let token = keys.issue(user, Duration::from_secs(60)).unwrap();
        assert_eq!(keys.verify(&token).unwrap(), user);
        let other = JwtKeys::new(&[8u8; 32]);
        assert!(other.verify(&token).is_err());
        // An unsigned token claiming alg "none" is refused.
        let header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
        let body = token.split('.').nth(1).unwrap();
        assert!(keys.verify(&format!("{header}.{body}.")).is_err());
    }
}
