//! The remote systems' JSON APIs over [`send`]: where each is, the credentials
//! its requests carry, and the answers parsed.

use reqwest::{Method, RequestBuilder};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use super::error::ConnectorError;
use super::policy::HttpPolicy;
use super::send::{Replay, Reply, send};
use super::throttle::Throttle;

/// Parses an answer. The error names where the answer went wrong, never the
/// value found there (it could be a password).
pub(crate) fn decode<T: DeserializeOwned>(
    system: &'static str,
    body: &[u8],
) -> Result<T, ConnectorError> {
    serde_json::from_slice(body).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Syntax => "malformed JSON",
            serde_json::error::Category::Data => "a value of the wrong shape",
            serde_json::error::Category::Eof => "a truncated answer",
            serde_json::error::Category::Io => "an unreadable answer",
        };
        ConnectorError::Decode(
            format!("{what} at line {} column {}", e.line(), e.column()),
            system,
        )
    })
}

/// Parses a base URL given by a partner.
fn base_url(system: &'static str, text: &str) -> Result<Url, ConnectorError> {
    Url::parse(text.trim_end_matches('/'))
        .map_err(|e| ConnectorError::Decode(format!("URL: {e}"), system))
}

/// A remote system as a connector reaches it: its base URL, the HTTP client,
/// and the policy and pace its requests keep to.
pub(crate) struct Endpoint {
    system: &'static str,
    http: reqwest::Client,
    base: Url,
    pub(crate) policy: HttpPolicy,
    pub(crate) throttle: Throttle,
}

impl Endpoint {
    /// `base` as a partner gave it, reached as `policy` says (a private address
    /// is refused unless the policy allows it).
    pub(crate) fn new(
        system: &'static str,
        base: &str,
        policy: HttpPolicy,
        throttle: Throttle,
    ) -> Result<Self, ConnectorError> {
        let base = base_url(system, base)?;
        Ok(Self {
            system,
            http: policy.client(system, &base)?,
            base,
            policy,
            throttle,
        })
    }

    /// [`send`] to this system.
    pub(crate) async fn send(
        &self,
        operation: &'static str,
        replay: Replay,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Reply, ConnectorError> {
        let (policy, throttle) = (&self.policy, &self.throttle);
        send(self.system, operation, policy, throttle, replay, build).await
    }
}

/// How a request proves who sends it.
pub(crate) enum Credentials<'a> {
    /// HTTP Basic: a login and its password.
    Basic(&'a str, &'a SecretString),
    /// An access token, renewed once when the remote refuses it.
    Bearer(SecretString),
}

impl Credentials<'_> {
    fn apply(&self, request: RequestBuilder) -> RequestBuilder {
        match self {
            Credentials::Basic(login, password) => {
                request.basic_auth(login, Some(password.expose_secret()))
            }
            Credentials::Bearer(token) => request.bearer_auth(token.expose_secret()),
        }
    }
}

/// A remote system's JSON API: where it is, and the credentials its requests
/// carry. Its calls build on [`JsonApi::call`].
pub(crate) trait JsonApi: Sync {
    fn endpoint(&self) -> &Endpoint;

    /// What the next request proves its sender with.
    async fn credentials(&self) -> Result<Credentials<'_>, ConnectorError>;

    /// The remote refused `token` (401): drop it, so that the next is fresh.
    async fn forget(&self, _token: &SecretString) {}

    /// Sends the request `build` makes, with the credentials; a refused access
    /// token is renewed once. `operation` names the call in metrics.
    async fn call(
        &self,
        operation: &'static str,
        replay: Replay,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Reply, ConnectorError> {
        let attempt = async |credentials: &Credentials<'_>| {
            self.endpoint()
                .send(operation, replay, || credentials.apply(build()))
                .await
        };
        let credentials = self.credentials().await?;
        match (&credentials, attempt(&credentials).await) {
            (Credentials::Bearer(token), Err(e)) if e.is_status(401) => {
                self.forget(token).await;
                attempt(&self.credentials().await?).await
            }
            (_, answered) => answered,
        }
    }

    fn http(&self) -> &reqwest::Client {
        &self.endpoint().http
    }

    /// `path` under the base URL.
    fn url(&self, path: &str) -> String {
        let base = &self.endpoint().base;
        format!("{}{path}", base.as_str().trim_end_matches('/'))
    }
    /// GETs `path` with `query` (a read, replayed on any transient failure) and reads the answer.
    async fn get_json<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ConnectorError> {
        let url = self.url(path);
        let reply = self
            .call(operation, Replay::Safe, || {
                self.http().get(&url).query(query)
            })
            .await?;
        decode(self.endpoint().system, &reply.body)
    }

    /// Sends `body` with `method` to `path` and reads the answer.
    async fn send_json<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        operation: &'static str,
        replay: Replay,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T, ConnectorError> {
        let url = self.url(path);
        let reply = self
            .call(operation, replay, || {
                self.http().request(method.clone(), &url).json(body)
            })
            .await?;
        decode(self.endpoint().system, &reply.body)
    }
}
