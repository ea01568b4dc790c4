//! Requests that do not decode are the caller's fault: INVALID_ARGUMENT,
//! not INTERNAL.
//!
//! tonic's protobuf codec answers a message it cannot decode with INTERNAL
//! (the right code for a client reading a server's answer), and the
//! generated services decode the request before any handler runs. This
//! layer sits in front of every service of the listener and rewrites that
//! one answer: a status carried in the response headers (tonic answers a
//! request it could not read without a body) whose code is INTERNAL and
//! whose message is prost's decode error. Errors of the handlers never
//! carry that message; they say "internal error".

use std::task::{Context, Poll};

use futures_util::TryFutureExt;
use futures_util::future::MapOk;
use tonic::{Code, Status};

/// What prost's `DecodeError` says first.
const DECODE_ERROR: &str = "failed to decode Protobuf message";

#[derive(Debug, Clone, Copy, Default)]
pub struct UndecodableIsInvalidArgument;

impl<S> tower::Layer<S> for UndecodableIsInvalidArgument {
    type Service = MapUndecodable<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MapUndecodable { inner }
    }
}

#[derive(Debug, Clone)]
pub struct MapUndecodable<S> {
    inner: S,
}

type Rewrite<B> = fn(http::Response<B>) -> http::Response<B>;

impl<S, Request, B> tower::Service<Request> for MapUndecodable<S>
where
    S: tower::Service<Request, Response = http::Response<B>>,
{
    type Response = http::Response<B>;
    type Error = S::Error;
    type Future = MapOk<S::Future, Rewrite<B>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        self.inner.call(request).map_ok(rewrite as Rewrite<B>)
    }
}

fn rewrite<B>(mut response: http::Response<B>) -> http::Response<B> {
    let Some(status) = Status::from_header_map(response.headers()) else {
        return response;
    };
    if status.code() == Code::Internal && status.message().starts_with(DECODE_ERROR) {
        let refused = Status::invalid_argument(format!(
            "the request could not be decoded: {}",
            status.message()
        ));
        // Only fails for a message a header cannot carry; the original
        // answer then stands.
        let _ = refused.add_header(response.headers_mut());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decode_failure_becomes_invalid_argument_and_nothing_else_changes() {
        let decode = Status::internal("failed to decode Protobuf message: invalid wire type");
        let rewritten = rewrite(decode.into_http::<()>());
        let status = Status::from_header_map(rewritten.headers()).unwrap();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("invalid wire type"), "{status:?}");

        let internal = rewrite(Status::internal("internal error").into_http::<()>());
        let status = Status::from_header_map(internal.headers()).unwrap();
        assert_eq!(status.code(), Code::Internal);
    }
}
