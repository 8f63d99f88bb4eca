//! The cloud's identity provider, as `docs/cloud-contract.md` describes it:
//! OIDC discovery, a JWKS at `/api/2/idp/keys`, a client-credentials token
//! endpoint issuing RS256 JWTs with the cloud's claims, key rotation, and
//! failures of discovery and the key set on demand ([`faults`]).

mod faults;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode,
};
use rsa::RsaPrivateKey;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use faults::{Endpoint, FaultState};
pub use faults::{FaultAnswer, IdpFaults};

/// Access tokens live two hours, as the cloud's do.
pub const TOKEN_LIFETIME_SECS: i64 = 2 * 60 * 60;

pub fn generate_key() -> RsaPrivateKey {
    let mut rng = rsa::rand_core::OsRng;
    RsaPrivateKey::new(&mut rng, 2048).expect("RSA key generation with the OS random generator")
}

#[derive(Clone)]
struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Jwk,
}

impl SigningKey {
    fn new(key: &RsaPrivateKey) -> Self {
        let der = key.to_pkcs1_der().expect("an RSA key encodes as PKCS#1");
        let encoding = EncodingKey::from_rsa_der(der.as_bytes());
        let digest = Sha256::digest(key.n().to_bytes_be());
        let kid: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        let mut jwk =
            Jwk::from_encoding_key(&encoding, Algorithm::RS256).expect("an RSA key has a JWK");
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        let decoding = DecodingKey::from_jwk(&jwk).expect("an RSA JWK decodes");
        Self {
            kid,
            encoding,
            decoding,
            jwk,
        }
    }
}

struct ApiClient {
    secret: String,
    tenant_id: Uuid,
    tid: i64,
    /// The role its tokens grant on its tenant (`partner_admin`, `readonly_admin`).
    role: &'static str,
}

pub struct IdpState {
    issuer: String,
    audience: String,
    /// Published keys; the last one signs.
    keys: RwLock<Vec<SigningKey>>,
    clients: RwLock<HashMap<String, ApiClient>>,
    jwks_requests: AtomicU64,
    discovery_requests: AtomicU64,
    next_tid: AtomicU64,
    faults: FaultState,
    /// Tokens verified, with their claims: an RS256 verification took about a
    /// quarter of the simulator's time at `large` (every request to `sim cloud`
    /// verifies its bearer token; a client reuses one for an hour). A hit is still
    /// checked for expiry; a key rotation empties it.
    verified: std::sync::Mutex<HashMap<String, Value>>,
}

/// The most verified tokens kept (then the cache starts again).
const VERIFIED_KEPT: usize = 10_000;

#[derive(Clone, Debug)]
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: String,
    pub tenant_id: Uuid,
}

impl IdpState {
    pub fn new(issuer: String, audience: String, key: &RsaPrivateKey) -> Self {
        Self {
            issuer,
            audience,
            keys: RwLock::new(vec![SigningKey::new(key)]),
            clients: RwLock::new(HashMap::new()),
            jwks_requests: AtomicU64::new(0),
            discovery_requests: AtomicU64::new(0),
            next_tid: AtomicU64::new(1000),
            faults: FaultState::default(),
            verified: std::sync::Mutex::new(HashMap::new()),
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// An API client with the partner-admin role on `tenant_id`.
    pub fn register_client(&self, tenant_id: Uuid) -> ClientCredentials {
        self.register_client_with_role(tenant_id, "partner_admin")
    }

    /// An API client whose tokens grant `role` (a `userRole` of the cloud) on `tenant_id`.
    pub fn register_client_with_role(
        &self,
        tenant_id: Uuid,
        role: &'static str,
    ) -> ClientCredentials {
        let client_id = Uuid::new_v4().to_string();
        let mut secret = [0u8; 24];
        getrandom::fill(&mut secret).expect("OS random generator");
        let client_secret = hex(&secret);
        let tid = self.next_tid.fetch_add(1, Ordering::Relaxed) as i64;
        self.clients
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                client_id.clone(),
                ApiClient {
                    secret: client_secret.clone(),
                    tenant_id,
                    tid,
                    role,
                },
            );
        ClientCredentials {
            client_id,
            client_secret,
            tenant_id,
        }
    }

    /// The claims the cloud puts in a partner admin's access token.
    pub fn partner_claims(&self, tenant_id: Uuid, subject: &str) -> Value {
        self.claims_with_role(tenant_id, subject, "partner_admin")
    }

    /// The claims of an access token that grants `role` on `tenant_id`.
    pub fn claims_with_role(&self, tenant_id: Uuid, subject: &str, role: &str) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({
            "iss": self.issuer,
            "sub": subject,
            "aud": self.audience,
            "exp": now + TOKEN_LIFETIME_SECS,
            "nbf": now,
            "iat": now,
            "jti": Uuid::new_v4().to_string(),
            "client_id": subject,
            "sub_type": "api_client",
            "scope": [{"tid": 1, "tuid": tenant_id.to_string(), "rs": "", "rn": "account-server", "role": role}],
        })
    }

    /// A valid partner-admin token for `tenant_id`.
    pub fn partner_token(&self, tenant_id: Uuid) -> String {
        self.sign(&self.partner_claims(tenant_id, &Uuid::new_v4().to_string()))
    }

    /// A valid token of the cloud's read-only administrator (`readonly_admin`) of `tenant_id`.
    pub fn read_only_token(&self, tenant_id: Uuid) -> String {
        let subject = Uuid::new_v4().to_string();
        self.sign(&self.claims_with_role(tenant_id, &subject, "readonly_admin"))
    }

    /// Signs any claims with the active key, `kid` set.
    pub fn sign(&self, claims: &Value) -> String {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let key = keys.last().expect("an identity provider always has a key");
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(key.kid.clone());
        encode(&header, claims, &key.encoding).expect("RS256 signing")
    }

    /// Signs with the active key but a caller-made header (for tests of bad headers).
    pub fn sign_with_header(&self, header: &Header, claims: &Value) -> String {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let key = keys.last().expect("an identity provider always has a key");
        encode(header, claims, &key.encoding).expect("RS256 signing")
    }

    pub fn active_kid(&self) -> String {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .last()
            .map(|k| k.kid.clone())
            .unwrap_or_default()
    }

    /// Starts signing with `key`; the old keys stay published unless `retire_old`.
    pub fn rotate(&self, key: &RsaPrivateKey, retire_old: bool) {
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        if retire_old {
            keys.clear();
        }
        keys.push(SigningKey::new(key));
        self.verified_tokens().clear();
    }

    /// The claims of `token` when one of the published keys signed it (RS256) and
    /// `exp`, `iss` and `aud` hold; `None` otherwise, whatever the reason.
    pub fn verify(&self, token: &str) -> Option<Value> {
        if let Some(claims) = self.verified_tokens().get(token)
            && claims["exp"]
                .as_i64()
                .is_some_and(|exp| exp > chrono::Utc::now().timestamp())
        {
            return Some(claims.clone());
        }
        let claims = self.verify_signed(token)?;
        let mut verified = self.verified_tokens();
        if verified.len() >= VERIFIED_KEPT {
            verified.clear();
        }
        verified.insert(token.to_string(), claims.clone());
        Some(claims)
    }

    fn verified_tokens(&self) -> std::sync::MutexGuard<'_, HashMap<String, Value>> {
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn verify_signed(&self, token: &str) -> Option<Value> {
        let header = decode_header(token).ok()?;
        if header.alg != Algorithm::RS256 {
            return None;
        }
        let kid = header.kid?;
        let key = {
            let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
            keys.iter().find(|k| k.kid == kid)?.decoding.clone()
        };
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        decode::<Value>(token, &key, &validation)
            .ok()
            .map(|data| data.claims)
    }

    /// Requests for the key set, failed ones included.
    pub fn jwks_requests(&self) -> u64 {
        self.jwks_requests.load(Ordering::Relaxed)
    }

    /// Requests for the discovery document, failed ones included.
    pub fn discovery_requests(&self) -> u64 {
        self.discovery_requests.load(Ordering::Relaxed)
    }

    fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self
                .keys
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|k| k.jwk.clone())
                .collect(),
        }
    }

    /// An access token and an ID token (the document requires both in the answer) and their expiry.
    fn client_token(&self, client_id: &str, secret: &str) -> Option<(String, String, i64)> {
        let (tenant_id, tid, role) = {
            let clients = self.clients.read().unwrap_or_else(|e| e.into_inner());
            let client = clients.get(client_id).filter(|c| c.secret == secret)?;
            (client.tenant_id, client.tid, client.role)
        };
        let mut claims = self.claims_with_role(tenant_id, client_id, role);
        claims["scope"][0]["tid"] = json!(tid);
        let expires_on = claims["exp"].as_i64().unwrap_or_default();
        let id_claims = json!({"iss": self.issuer, "sub": client_id, "aud": client_id, "exp": expires_on, "iat": claims["iat"]});
        Some((self.sign(&claims), self.sign(&id_claims), expires_on))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The identity provider's routes; `sim cloud` mounts them too.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/.well-known/openid-configuration",
        web::get().to(discovery),
    )
    .route("/api/2/idp/keys", web::get().to(keys))
    .route("/api/2/idp/token", web::post().to(token))
    .route("/sim/idp/rotate", web::post().to(rotate))
    .route("/sim/idp/faults", web::get().to(faults::get_faults))
    .route("/sim/idp/faults", web::put().to(faults::put_faults));
}

async fn discovery(state: web::Data<IdpState>) -> HttpResponse {
    state.discovery_requests.fetch_add(1, Ordering::Relaxed);
    if let Some(failure) = state.faults.take(Endpoint::Discovery) {
        return failure;
    }
    let issuer = state.issuer();
    HttpResponse::Ok().json(json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/api/2/idp/keys"),
        "token_endpoint": format!("{issuer}/api/2/idp/token"),
        // Required by the document's `openidConfiguration`; only client credentials are served here.
        "authorization_endpoint": format!("{issuer}/api/2/idp/authorize"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
}

async fn keys(state: web::Data<IdpState>) -> HttpResponse {
    state.jwks_requests.fetch_add(1, Ordering::Relaxed);
    if let Some(failure) = state.faults.take(Endpoint::Keys) {
        return failure;
    }
    HttpResponse::Ok().json(state.jwks())
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
}

/// The document's `tokenError`: its `error` is one of a few values (`invalid_request`, `access_denied`, ...).
fn oauth_error(
    status: actix_web::http::StatusCode,
    error: &str,
    description: &str,
) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": error, "error_description": description }))
}

async fn token(
    state: web::Data<IdpState>,
    req: HttpRequest,
    form: Option<web::Form<TokenForm>>,
) -> HttpResponse {
    use actix_web::http::StatusCode;
    let Some(form) = form else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "a form with grant_type is required",
        );
    };
    if form.grant_type != "client_credentials" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "only the client_credentials grant is served",
        );
    }
    let Some((client_id, secret)) = super::basic_credentials(&req) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "access_denied",
            "client credentials are required in HTTP Basic auth",
        );
    };
    match state.client_token(&client_id, &secret) {
        Some((access_token, id_token, expires_on)) => {
            let expires_in = (expires_on - chrono::Utc::now().timestamp()).max(0);
            HttpResponse::Ok().json(json!({ "access_token": access_token, "token_type": "bearer", "id_token": id_token, "expires_in": expires_in, "expires_on": expires_on }))
        }
        None => oauth_error(
            StatusCode::UNAUTHORIZED,
            "access_denied",
            "unknown client or wrong secret",
        ),
    }
}

#[derive(Deserialize)]
struct RotateQuery {
    #[serde(default)]
    retire_old: bool,
}

async fn rotate(state: web::Data<IdpState>, query: web::Query<RotateQuery>) -> HttpResponse {
    let key = web::block(generate_key).await;
    match key {
        Ok(key) => {
            state.rotate(&key, query.retire_old);
            HttpResponse::Ok().json(json!({ "kid": state.active_kid() }))
        }
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

/// A running identity provider on loopback.
pub struct IdentityProvider {
    state: web::Data<IdpState>,
    handle: ServerHandle,
    addr: SocketAddr,
}

impl IdentityProvider {
    /// Binds `bind` (port 0 for any) and serves until stopped.
    pub fn start(bind: SocketAddr, audience: &str, key: &RsaPrivateKey) -> std::io::Result<Self> {
        let listener = TcpListener::bind(bind)?;
        let addr = listener.local_addr()?;
        let state = web::Data::new(IdpState::new(
            format!("http://{addr}"),
            audience.to_string(),
            key,
        ));
        let app_state = state.clone();
        let server =
            HttpServer::new(move || App::new().app_data(app_state.clone()).configure(routes))
                .workers(1)
                .disable_signals()
                .listen(listener)?
                .run();
        let handle = super::run_in_background(server);
        Ok(Self {
            state,
            handle,
            addr,
        })
    }

    pub fn state(&self) -> &IdpState {
        &self.state
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

impl std::ops::Deref for IdentityProvider {
    type Target = IdpState;

    fn deref(&self) -> &IdpState {
        &self.state
    }
}
