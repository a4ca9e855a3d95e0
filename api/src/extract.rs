//! Request extractors: JSON bodies whose errors name the field, and the caller's identity.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::dev::Payload;
use actix_web::web::{Bytes, Data};
use actix_web::{FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

/// Largest JSON body accepted (bytes); bigger bodies answer 413.
pub const MAX_JSON_BODY_BYTES: usize = 1 << 20;

/// A JSON body. A syntax error, a wrong type, a missing or unknown field answers 400
/// with the JSON path of the field at fault.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let content_type_ok = req
            .headers()
            .get(actix_web::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v.starts_with("application/json") || v.contains("+json"));
        let body = Bytes::from_request(req, payload);
        Box::pin(async move {
            if !content_type_ok {
                return Err(ApiError::invalid("content-type", "must be application/json").into());
            }
            let bytes = body.await?;
            parse_json(&bytes).map(JsonBody).map_err(Into::into)
        })
    }
}

/// An admin-only route's caller and JSON body: the caller is authenticated and found to
/// be an admin before the body is looked at, so anyone else gets 401 or 403 whatever
/// they send (authorization before validation).
pub struct AdminJson<T>(pub Caller, pub T);

impl<T: DeserializeOwned + 'static> FromRequest for AdminJson<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let caller = Caller::from_request(req, payload);
        let body = JsonBody::<T>::from_request(req, payload);
        Box::pin(async move {
            let caller = caller.await?;
            caller.require_admin("only admins manage accounts")?;
            let JsonBody(body) = body.await?;
            Ok(AdminJson(caller, body))
        })
    }
}

/// Like [`JsonBody`], but an empty body means `T::default()`.
pub struct JsonBodyOrDefault<T>(pub T);

impl<T: DeserializeOwned + Default + 'static> FromRequest for JsonBodyOrDefault<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = body.await?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(JsonBodyOrDefault(T::default()));
            }
            parse_json(&bytes)
                .map(JsonBodyOrDefault)
                .map_err(Into::into)
        })
    }
}

/// Parses `bytes` as `T`, naming the failing field in the error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    refuse_nul_characters(bytes)?;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::Malformed(format!("invalid JSON: {inner}"))
        } else {
            let reason = strip_position(&inner.to_string());
            ApiError::invalid(field_at_fault(&path, &reason), reason)
        }
    })?;
    de.end()
        .map_err(|e| ApiError::Malformed(format!("invalid JSON: {e}")))?;
    Ok(value)
}

/// PostgreSQL stores no NUL character (in text or jsonb): refuse one anywhere in the
/// body with the path of the string that holds it.
fn refuse_nul_characters(bytes: &[u8]) -> Result<(), ApiError> {
    const ESCAPED_NUL: &[u8] = b"\\u0000";
    if !bytes
        .windows(ESCAPED_NUL.len())
        .any(|w| w.eq_ignore_ascii_case(ESCAPED_NUL))
    {
        return Ok(());
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Ok(()); // the typed parse reports the syntax error
    };
    match path_of_nul(&value, String::new()) {
        Some(path) => Err(ApiError::invalid(
            path,
            "must not contain the NUL character",
        )),
        None => Ok(()),
    }
}

fn path_of_nul(value: &serde_json::Value, path: String) -> Option<String> {
    let here = || {
        if path.is_empty() {
            "body".to_string()
        } else {
            path.clone()
        }
    };
    match value {
        serde_json::Value::String(s) if s.contains('\0') => Some(here()),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| path_of_nul(v, format!("{}[{i}]", here()))),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            let child = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            if k.contains('\0') {
                Some(child)
            } else {
                path_of_nul(v, child)
            }
        }),
        _ => None,
    }
}

/// The JSON path to name: the path serde stopped at, plus the field a "missing field"
/// or "unknown field" message names.
fn field_at_fault(path: &str, reason: &str) -> String {
    let named = ["missing field `", "unknown field `", "invalid field `"]
        .iter()
        .find_map(|prefix| reason.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    let parent = if path == "." { "" } else { path };
    match named {
        Some(name) if parent.is_empty() => name.to_string(),
        Some(name) if !parent.ends_with(name) => format!("{parent}.{name}"),
        _ if parent.is_empty() => "body".to_string(),
        _ => parent.to_string(),
    }
}

/// serde_json appends " at line 1 column 42"; the field path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

impl FromRequest for Caller {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<Data<AppState>>().cloned();
        let header = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal(std::fmt::Error))?;
            let token = header
                .as_deref()
                .and_then(|h| h.strip_prefix("Bearer "))
                .ok_or(ApiError::Unauthorized("missing bearer token"))?;
            Ok(crate::auth::authenticate(&state, token).await?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        inner: Inner,
    }
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Inner {
        count: u32,
    }

    #[test]
    fn errors_name_the_field() {
        match parse_json::<Body>(br#"{"name":"x","inner":{"count":"many"}}"#) {
            Err(ApiError::Invalid { field, reason }) => {
                assert_eq!(field, "inner.count");
                assert!(reason.contains("invalid type"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        match parse_json::<Body>(br#"{"name":"x"}"#) {
            Err(ApiError::Invalid { field, reason }) => {
                assert_eq!(field, "inner");
                assert!(reason.contains("missing field `inner`"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_json::<Body>(b"{not json"),
            Err(ApiError::Malformed(_))
        ));
        assert!(matches!(
            parse_json::<Body>(br#"{"name":"x","inner":{"count":1}} trailing"#),
            Err(ApiError::Malformed(_))
        ));
    }
}
