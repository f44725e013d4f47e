//! Authentication to Vault: a token, or an AppRole login; token lookup and
//! renewal.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use http::Method;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::config::{AuthConfig, SecretSource};
use crate::error::{Error, VaultError, VaultErrorKind};
use crate::http::{Call, Http, status_error};
use crate::secret::{Secret, wiped_bytes};
use crate::transit::Envelope;

/// The configured authentication, with the secrets read from the environment.
pub(crate) enum Auth {
    Token(Held),
    AppRole {
        mount: String,
        role_id: Held,
        secret_id: Held,
    },
}

/// A secret held in memory (it came from the environment) or read from its
/// file whenever it is needed.
pub(crate) enum Held {
    Value(Secret),
    File(PathBuf),
}

/// The lifetime of the current token.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lease {
    /// Time to live; zero for a token that never expires.
    pub(crate) ttl: Duration,
    pub(crate) renewable: bool,
}

/// The AppRole login request; serialized straight into a buffer wiped after use.
#[derive(Serialize)]
struct Login<'a> {
    role_id: &'a str,
    secret_id: &'a str,
}

#[derive(Deserialize)]
struct LookupData {
    #[serde(default)]
    ttl: u64,
    #[serde(default)]
    renewable: bool,
}

#[derive(Deserialize)]
struct AuthEnvelope {
    auth: Option<AuthData>,
}

#[derive(Deserialize)]
struct AuthData {
    client_token: Option<String>,
    #[serde(default)]
    lease_duration: u64,
    #[serde(default)]
    renewable: bool,
}

// === impl Auth ===

impl Auth {
    pub(crate) fn new(
        config: &AuthConfig,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<Self, Error> {
        let hold = |what, source: &SecretSource| -> Result<Held, Error> {
            match source {
                SecretSource::Env(_) => Ok(Held::Value(Secret::read(what, source, env)?)),
                SecretSource::File(path) => {
                    // Read once now, so a missing file fails at startup.
                    Secret::read(what, source, env)?;
                    Ok(Held::File(path.clone()))
                }
            }
        };
        Ok(match config {
            AuthConfig::Token { token } => Self::Token(hold("vault token", token)?),
            AuthConfig::AppRole {
                mount,
                role_id,
                secret_id,
            } => Self::AppRole {
                mount: mount.clone(),
                role_id: hold("AppRole role id", role_id)?,
                secret_id: hold("AppRole secret id", secret_id)?,
            },
        })
    }

    /// A short name of the method, for logs.
    pub(crate) fn method(&self) -> &'static str {
        match self {
            Self::Token(_) => "token",
            Self::AppRole { .. } => "approle",
        }
    }

    /// Whether a new login gives a new token (AppRole), rather than the same
    /// token again (a token from a file may have been replaced, though).
    pub(crate) fn can_login_again(&self) -> bool {
        match self {
            Self::Token(Held::File(_)) | Self::AppRole { .. } => true,
            Self::Token(Held::Value(_)) => false,
        }
    }

    /// Obtains a token and installs it in `http`: reads the token and looks it
    /// up, or logs in with AppRole.
    pub(crate) async fn login(&self, http: &Http, deadline: Instant) -> Result<Lease, Error> {
        match self {
            Self::Token(held) => {
                let token = held.get("vault token")?;
                http.set_token(&token)?;
                let call = Call {
                    method: Method::GET,
                    path: "auth/token/lookup-self",
                    body: None,
                    token: true,
                    namespace: true,
                    idempotent: true,
                };
                let answer = http.send(&call, deadline).await.map_err(Error::Auth)?;
                if answer.status != 200 {
                    return Err(Error::Auth(status_error(&call, None, &answer)));
                }
                let data = serde_json::from_slice::<Envelope<LookupData>>(&answer.body)
                    .ok()
                    .and_then(|e| e.data)
                    .ok_or_else(|| {
                        Error::Auth(decode_error(&call, "the token lookup answer is unreadable"))
                    })?;
                Ok(Lease {
                    ttl: Duration::from_secs(data.ttl),
                    renewable: data.renewable,
                })
            }
            Self::AppRole {
                mount,
                role_id,
                secret_id,
            } => {
                let role_id = role_id.get("AppRole role id")?;
                let secret_id = secret_id.get("AppRole secret id")?;
                let login = Login {
                    role_id: role_id.expose(),
                    secret_id: secret_id.expose(),
                };
                let body = serde_json::to_vec(&login).map_err(|_| {
                    Error::Auth(VaultError::new(
                        Method::POST,
                        "auth/approle/login",
                        None,
                        VaultErrorKind::Decode("cannot encode the login request"),
                    ))
                })?;
                let path = format!("auth/{mount}/login");
                let call = Call {
                    method: Method::POST,
                    path: &path,
                    body: Some(wiped_bytes(body)),
                    token: false,
                    namespace: true,
                    idempotent: true,
                };
                let answer = http.send(&call, deadline).await.map_err(Error::Auth)?;
                if answer.status != 200 {
                    return Err(Error::Auth(status_error(&call, None, &answer)));
                }
                let (token, lease) = read_auth(&call, &answer.body)?;
                http.set_token(&token)?;
                Ok(lease)
            }
        }
    }

    /// Renews the current token by `increment`.
    pub(crate) async fn renew(
        &self,
        http: &Http,
        increment: Duration,
        deadline: Instant,
    ) -> Result<Lease, Error> {
        let body = serde_json::json!({ "increment": format!("{}s", increment.as_secs().max(1)) });
        let call = Call {
            method: Method::POST,
            path: "auth/token/renew-self",
            body: Some(serde_json::to_vec(&body).unwrap_or_default().into()),
            token: true,
            namespace: true,
            idempotent: true,
        };
        let answer = http.send(&call, deadline).await.map_err(Error::Auth)?;
        if answer.status != 200 {
            return Err(Error::Auth(status_error(&call, None, &answer)));
        }
        let (_, lease) = read_auth(&call, &answer.body)?;
        Ok(lease)
    }
}

fn read_auth(call: &Call<'_>, body: &[u8]) -> Result<(Secret, Lease), Error> {
    let auth = serde_json::from_slice::<AuthEnvelope>(body)
        .ok()
        .and_then(|e| e.auth)
        .ok_or_else(|| Error::Auth(decode_error(call, "the answer has no `auth` section")))?;
    let token = auth
        .client_token
        .filter(|t| !t.is_empty())
        .map(Secret::new)
        .ok_or_else(|| Error::Auth(decode_error(call, "the answer has no client token")))?;
    Ok((
        token,
        Lease {
            ttl: Duration::from_secs(auth.lease_duration),
            renewable: auth.renewable,
        },
    ))
}

fn decode_error(call: &Call<'_>, what: &'static str) -> VaultError {
    VaultError::new(
        call.method.clone(),
        call.path,
        None,
        VaultErrorKind::Decode(what),
    )
}

// === impl Held ===

impl Held {
    fn get(&self, what: &'static str) -> Result<Secret, Error> {
        match self {
            Self::Value(secret) => Ok(secret.clone()),
            Self::File(path) => Secret::read(what, &SecretSource::File(path.clone()), &|_| None),
        }
    }
}
