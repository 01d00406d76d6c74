//! kube's tower-test mock client (kube-rs's recommended pattern: `Client::new(mock, "default")`):
//! it answers scripted replies in order and records each request.

#![allow(dead_code)]

use http::{Request, Response};
use kube::client::Body;
use serde_json::Value;
use tower_test::mock;

/// One request as the API server received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub content_type: String,
    pub body: Value,
}

/// Answers the scripted `(status, body)` replies in order and returns what was asked.
pub fn mock_client(
    replies: Vec<(u16, Value)>,
) -> (kube::Client, tokio::task::JoinHandle<Vec<Seen>>) {
    let (svc, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let task = tokio::spawn(async move {
        let mut handle = std::pin::pin!(handle);
        let mut seen = Vec::new();
        for (status, body) in replies {
            let (req, send) = handle
                .next_request()
                .await
                .expect("the client sent fewer requests than scripted");
            let method = req.method().to_string();
            let uri = req.uri().to_string();
            let content_type = req
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let bytes = req.into_body().collect_bytes().await.unwrap();
            let body_v = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap()
            };
            seen.push(Seen {
                method,
                uri,
                content_type,
                body: body_v,
            });
            send.send_response(
                Response::builder()
                    .status(status)
                    .body(Body::from(serde_json::to_vec(&body).unwrap()))
                    .unwrap(),
            );
        }
        seen
    });
    (kube::Client::new(svc, "default"), task)
}
