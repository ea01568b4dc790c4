//! A refusal the client can read. Refusals quote what they refuse (a
//! group name, a device id), and a status travels in the answer's headers,
//! percent-encoded: quoting a 100 kB argument whole makes headers larger
//! than clients accept (16 KiB for tonic's), and the caller sees only an
//! HTTP/2 protocol error. This layer sits in front of every service of the
//! listener and cuts a status message longer than [`MAX_MESSAGE`] bytes at
//! a character boundary, marking the cut; code and shorter messages are
//! left alone.

use std::task::{Context, Poll};

use futures_util::TryFutureExt;
use futures_util::future::MapOk;
use tonic::Status;

/// The longest message kept whole: 12 KiB once every byte is
/// percent-encoded, inside the 16 KiB a client accepts.
const MAX_MESSAGE: usize = 4096;

#[derive(Debug, Clone, Copy, Default)]
pub struct ShortStatusMessages;

impl<S> tower::Layer<S> for ShortStatusMessages {
    type Service = ShortenStatus<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ShortenStatus { inner }
    }
}

#[derive(Debug, Clone)]
pub struct ShortenStatus<S> {
    inner: S,
}

type Rewrite<B> = fn(http::Response<B>) -> http::Response<B>;

impl<S, Request, B> tower::Service<Request> for ShortenStatus<S>
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
    if status.message().len() > MAX_MESSAGE {
        let shortened = Status::new(status.code(), shorten(status.message()));
        // Only fails for a message a header cannot carry; the original
        // answer then stands.
        let _ = shortened.add_header(response.headers_mut());
    }
    response
}

/// At most `MAX_MESSAGE` bytes of `message`, cut at a character boundary,
/// and a mark that says it was cut.
fn shorten(message: &str) -> String {
    let mut end = MAX_MESSAGE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}… ({} bytes left out)",
        message.get(..end).unwrap_or_default(),
        message.len() - end
    )
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn a_long_message_is_cut_at_a_character_boundary_and_keeps_its_code() {
        let quoted = format!("group name \"{}\" is too long", "é".repeat(10_000));
        let rewritten = rewrite(Status::invalid_argument(quoted.clone()).into_http::<()>());
        let status = Status::from_header_map(rewritten.headers()).unwrap();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().len() < MAX_MESSAGE + 40,
            "{}",
            status.message().len()
        );
        assert!(status.message().starts_with("group name \"éé"));
        assert!(status.message().ends_with("bytes left out)"));
        let kept = status.message().split('…').next().unwrap();
        assert!(quoted.starts_with(kept));

        let short = rewrite(Status::not_found("device x not found").into_http::<()>());
        let status = Status::from_header_map(short.headers()).unwrap();
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "device x not found");
    }
}
