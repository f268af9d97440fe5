//! The Pingora side: one small `impl ProxyHttp`. Authentication happens in
//! `request_filter`, the choice of upstream in `upstream_peer`, the access
//! log in `logging`; the decisions themselves live in `routing` and `token`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::lb::LoadBalancer;
use pingora::lb::selection::RoundRobin;
use pingora::prelude::{HttpPeer, ProxyHttp, Session};
use pingora::proxy::FailToProxy;
use pingora::{Error, ErrorSource, ErrorType, Result};

use crate::config::AuthPolicy;
use crate::routing::{RouteTable, is_normalised};
use crate::token::{AuthError, Identity, TokenVerifier};

/// Headers that carry identity from the proxy to the services. A client's
/// copies are always removed: only the proxy may set them.
pub const IDENTITY_HEADER_PREFIX: &str = "x-gatehouse-";
pub const USER_ID_HEADER: &str = "x-gatehouse-user-id";

pub struct Gateway {
    pub routes: RouteTable,
    pub upstreams: BTreeMap<String, Arc<LoadBalancer<RoundRobin>>>,
    pub verifier: TokenVerifier,
}

/// Per-request state, filled in by `request_filter`.
pub struct RequestCtx {
    started: Instant,
    upstream: Option<String>,
    /// The path the route sends upstream, when it differs from the client's.
    upstream_path: Option<String>,
    identity: Option<Identity>,
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx { started: Instant::now(), upstream: None, upstream_path: None, identity: None }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let path = session.req_header().uri.path().to_owned();
        if !is_normalised(&path) {
            respond_json(session, 400, "Invalid path", &[]).await?;
            return Ok(true);
        }
        let Some(route) = self.routes.find(&path) else {
            respond_json(session, 404, "Not Found", &[]).await?;
            return Ok(true);
        };
        ctx.upstream = Some(route.upstream.clone());
        if route.rewrite.is_some() {
            ctx.upstream_path = Some(route.upstream_path(&path));
        }
        remove_identity_headers(session.req_header_mut());
        if route.auth == AuthPolicy::Required {
            let authorization = session.req_header().headers.get(http::header::AUTHORIZATION);
            match self.verifier.verify_bearer_token(authorization.map(|v| v.as_bytes())) {
                Ok(identity) => ctx.identity = Some(identity),
                Err(e) => {
                    respond_unauthorized(session, e).await?;
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        let name = ctx.upstream.as_deref().unwrap_or_default();
        let backend = self.upstreams.get(name).and_then(|lb| lb.select(b"", 256)).ok_or_else(|| {
            Error::explain(ErrorType::ConnectNoRoute, format!("no healthy server in upstream `{name}`"))
        })?;
        Ok(Box::new(HttpPeer::new(backend, false, String::new())))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(path) = &ctx.upstream_path {
            let uri = match upstream_request.uri.query() {
                Some(query) => format!("{path}?{query}"),
                None => path.clone(),
            };
            let uri = http::Uri::try_from(uri)
                .map_err(|e| Error::explain(ErrorType::InternalError, format!("rewritten path: {e}")))?;
            upstream_request.set_uri(uri);
        }
        if let Some(identity) = &ctx.identity {
            upstream_request.insert_header(USER_ID_HEADER, identity.user_id.as_str())?;
        }
        if let Some(addr) = session.client_addr().and_then(|a| a.as_inet()) {
            let forwarded = match upstream_request.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
                Some(earlier) => format!("{earlier}, {}", addr.ip()),
                None => addr.ip().to_string(),
            };
            upstream_request.insert_header("x-forwarded-for", forwarded)?;
        }
        Ok(())
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, _ctx: &mut RequestCtx) -> FailToProxy {
        let code = match (e.etype(), e.esource()) {
            (ErrorType::HTTPStatus(code), _) => *code,
            (ErrorType::ConnectNoRoute, _) | (_, ErrorSource::Upstream) => 502,
            (ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed, ErrorSource::Downstream) => 0,
            (_, ErrorSource::Downstream) => 400,
            _ => 500,
        };
        if code > 0 {
            let detail = match code {
                502 => "Upstream unavailable",
                400 => "Bad request",
                _ => "Internal error",
            };
            if let Err(write_error) = respond_json(session, code, detail, &[]).await {
                tracing::debug!(error = %write_error, "could not send the error response");
            }
        }
        FailToProxy { error_code: code, can_reuse_downstream: false }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let req = session.req_header();
        tracing::info!(
            method = %req.method,
            path = %req.uri.path(),
            status,
            upstream = ctx.upstream.as_deref().unwrap_or("-"),
            elapsed_ms = ctx.started.elapsed().as_millis() as u64,
            error = e.map(|e| e.to_string()),
            "request"
        );
    }
}

/// Removes every `x-gatehouse-*` header, whatever its case.
fn remove_identity_headers(req: &mut RequestHeader) {
    let names: Vec<_> =
        req.headers.keys().filter(|name| name.as_str().starts_with(IDENTITY_HEADER_PREFIX)).cloned().collect();
    for name in names {
        req.remove_header(&name);
    }
}

async fn respond_unauthorized(session: &mut Session, e: AuthError) -> Result<()> {
    respond_json(session, 401, &e.to_string(), &[("www-authenticate", "Bearer")]).await
}

/// Answers from the proxy itself with the services' `{"detail": ...}` shape.
async fn respond_json(session: &mut Session, status: u16, detail: &str, headers: &[(&str, &str)]) -> Result<()> {
    let body = Bytes::from(serde_json::json!({ "detail": detail }).to_string());
    let mut response = ResponseHeader::build(status, Some(3 + headers.len()))?;
    response.insert_header("content-type", "application/json")?;
    response.insert_header("content-length", body.len().to_string())?;
    for (name, value) in headers {
        response.insert_header(name.to_string(), *value)?;
    }
    session.write_response_header(Box::new(response), false).await?;
    session.write_response_body(Some(body), true).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_headers_are_removed_in_any_case() {
        let mut req = RequestHeader::build("GET", b"/items", None).unwrap();
        req.insert_header("X-Gatehouse-User-Id", "forged").unwrap();
        req.insert_header("x-gatehouse-superuser", "true").unwrap();
        req.insert_header("x-other", "kept").unwrap();
        remove_identity_headers(&mut req);
        assert!(req.headers.get(USER_ID_HEADER).is_none());
        assert!(req.headers.get("x-gatehouse-superuser").is_none());
        assert_eq!(req.headers.get("x-other").unwrap(), "kept");
    }
}
