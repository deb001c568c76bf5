//! API keys: who may call `/user`. Keys are compared as SHA-256 digests in
//! constant time, and only their digests are kept in memory after startup.

use std::sync::Arc;

use poem::{http::HeaderMap, Request, RequestBody};
use poem_openapi::{
    registry::{MetaSecurityScheme, Registry},
    ApiExtractor, ApiExtractorType, ExtractParamOptions,
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{errors::ApiError, Shared};
use crate::{config::SecurityConfig, domain::Caller};

const SCHEME: &str = "ApiKey";
const MIN_KEY_CHARS: usize = 32;

type KeyDigest = [u8; 32];

/// Checks the `Authorization` header of `/user` requests.
#[derive(Clone)]
pub enum Authenticator {
    Keys(Vec<KeyDigest>),
    /// AUTH_DISABLED=true: every request is let through.
    Disabled,
}

impl Authenticator {
    pub fn from_config(config: &SecurityConfig) -> Result<Self, String> {
        let keys: Vec<&str> = config
            .api_keys
            .iter()
            .map(|key| key.trim())
            .filter(|key| !key.is_empty())
            .collect();
        match (keys.is_empty(), config.auth_disabled) {
            (true, false) => Err(format!(
                "API_KEYS is not set: give one or more keys of at least {MIN_KEY_CHARS} \
                 characters, or set AUTH_DISABLED=true to serve /user without authentication"
            )),
            (false, true) => Err("set either API_KEYS or AUTH_DISABLED=true, not both".into()),
            (true, true) => Ok(Self::Disabled),
            (false, false) => {
                for (position, key) in keys.iter().enumerate() {
                    check_key(key).map_err(|problem| {
                        format!("API_KEYS: key {} of {} {problem}", position + 1, keys.len())
                    })?;
                }
                Ok(Self::Keys(keys.iter().map(|key| digest(key)).collect()))
            }
        }
    }

    pub fn is_disabled(&self) -> bool {
        matches!(self, Self::Disabled)
    }

    /// The caller behind a valid `Authorization: Bearer <key>`.
    pub fn identify(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let keys = match self {
            Self::Disabled => return Ok(Caller::anonymous()),
            Self::Keys(keys) => keys,
        };
        let presented = bearer_token(headers).ok_or(ApiError::Unauthorized)?;
        let presented = digest(presented);
        // Look at every key, so timing says nothing about which one matched.
        let mut found = None;
        for key in keys {
            if bool::from(key.ct_eq(&presented)) {
                found = Some(*key);
            }
        }
        found
            .map(Caller::with_key_digest)
            .ok_or(ApiError::Unauthorized)
    }
}

fn digest(key: &str) -> KeyDigest {
    Sha256::digest(key.as_bytes()).into()
}

/// Keys must be long enough to resist guessing and valid as a bearer token
/// (RFC 6750 `b64token`), so any HTTP client can send them.
fn check_key(key: &str) -> Result<(), String> {
    let chars = key.chars().count();
    if chars < MIN_KEY_CHARS {
        return Err(format!(
            "has {chars} characters; at least {MIN_KEY_CHARS} are needed"
        ));
    }
    let body = key.trim_end_matches('=');
    let token_char = |c: char| c.is_ascii_alphanumeric() || "-._~+/".contains(c);
    if body.is_empty() || !body.chars().all(token_char) {
        return Err("may only contain letters, digits, `-._~+/` and trailing `=`".into());
    }
    Ok(())
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(poem::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Extracts the authenticated caller; declares the bearer scheme in the spec
/// so Swagger UI offers "Authorize" and generated SDKs take a token. Handlers
/// take it as their first parameter, so a caller without a valid key learns
/// nothing else: not whether the id is well-formed, nor whether it exists.
pub struct ApiKey(pub Caller);

impl<'a> ApiExtractor<'a> for ApiKey {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        registry.create_security_scheme(
            SCHEME,
            MetaSecurityScheme {
                ty: "http",
                description: Some(
                    "An API key from the server's API_KEYS, sent as `Authorization: Bearer <key>`.",
                ),
                name: None,
                key_in: None,
                scheme: Some("bearer"),
                bearer_format: Some("API key"),
                flows: None,
                openid_connect_url: None,
            },
        );
    }

    fn security_schemes() -> Vec<&'static str> {
        vec![SCHEME]
    }

    async fn from_request(
        request: &'a Request,
        _body: &mut RequestBody,
        _options: ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        // The edge authenticated the request already.
        if let Some(caller) = request.extensions().get::<Caller>() {
            return Ok(Self(*caller));
        }
        let shared = request.data::<Arc<Shared>>().ok_or_else(|| {
            ApiError::Internal("the request reached a handler without the edge".into())
        })?;
        Ok(Self(shared.authenticator.identify(request.headers())?))
    }
}

#[cfg(test)]
mod tests {
    use poem::http::HeaderValue;

    use super::*;

    const KEY: &str = "test-key-0123456789abcdefghijklmnopqrstuv";

    fn config(keys: &[&str], disabled: bool) -> SecurityConfig {
        SecurityConfig {
            api_keys: keys.iter().map(|key| key.to_string()).collect(),
            auth_disabled: disabled,
            trusted_proxies: Vec::new(),
            cors_origins: Vec::new(),
        }
    }

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            poem::http::header::AUTHORIZATION,
            HeaderValue::from_str(authorization).unwrap(),
        );
        headers
    }

    #[test]
    fn refuses_to_run_open_by_accident() {
        assert!(Authenticator::from_config(&config(&[], false)).is_err());
        assert!(Authenticator::from_config(&config(&[" ", ""], false)).is_err());
        assert!(Authenticator::from_config(&config(&[KEY], true)).is_err());
        assert!(Authenticator::from_config(&config(&[], true))
            .unwrap()
            .is_disabled());
    }

    #[test]
    fn keys_must_be_long_bearer_tokens() {
        let err = Authenticator::from_config(&config(&[KEY, "short"], false))
            .err()
            .unwrap();
        assert!(
            err.contains("key 2 of 2") && err.contains("at least 32"),
            "{err}"
        );
        let spaced = "with space 0123456789abcdefghijklmnopqrstuv";
        assert!(Authenticator::from_config(&config(&[spaced], false)).is_err());
        let padded = "abcdefghijklmnopqrstuvwxyz0123456789+/==";
        assert!(Authenticator::from_config(&config(&[padded], false)).is_ok());
    }

    #[test]
    fn identifies_only_a_configured_bearer_key() {
        let other = "another-key-0123456789abcdefghijklmnopqrs";
        let auth = Authenticator::from_config(&config(&[KEY, other], false)).unwrap();
        let first = auth.identify(&headers(&format!("Bearer {KEY}"))).unwrap();
        let second = auth
            .identify(&headers(&format!("bearer  {other} ")))
            .unwrap();
        assert_ne!(first, second);
        for bad in [
            format!("Basic {KEY}"),
            format!("Bearer {KEY}x"),
            "Bearer".to_owned(),
            "Bearer ".to_owned(),
            KEY.to_owned(),
        ] {
            assert!(auth.identify(&headers(&bad)).is_err(), "{bad}");
        }
        assert!(auth.identify(&HeaderMap::new()).is_err());
    }

    #[test]
    fn scopes_never_contain_the_key() {
        let auth = Authenticator::from_config(&config(&[KEY], false)).unwrap();
        let caller = auth.identify(&headers(&format!("Bearer {KEY}"))).unwrap();
        assert_eq!(caller.scope().len(), 64);
        assert!(!caller.scope().contains(KEY));
    }
}
