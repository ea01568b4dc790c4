//! How long an HTTPS connection may hold the server, and how many it holds.
//!
//! Without limits a client holds a connection, and a task, forever: a
//! request head that never ends, a keep-alive connection left idle, a body
//! shorter than its Content-Length, a chunk size no body will reach. Each
//! connection here has
//!
//! - a header timeout: hyper's `header_read_timeout`, which runs only when
//!   the connection has a timer (`TokioTimer`); it also bounds the TLS
//!   handshake;
//! - an idle timeout: a watchdog closes the connection once no request has
//!   been in flight for that long (a long poll is in flight, a client that
//!   stops reading a response is not);
//! - a body timeout: the request body ends in an error once it has taken
//!   longer than that since the request's head, which fails the handler's
//!   read and closes the connection;
//!
//! and each listener serves at most `max_connections` at once; more wait
//! in the kernel's backlog. `accept` is the loop both HTTPS listeners run:
//! the TLS handshake, the peer's address and certificate handed to the
//! handlers, and the limits above.
//!
//! What each listener serves (its routes) is in `mod.rs`; pausing after a
//! failed accept (EMFILE) is `api::accept`'s.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::{Peer, PeerCertificate};
use crate::api::accept::Acceptor;
use crate::config::HttpsLimits;

/// The error a body that took too long ends in.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimedOut(Duration);

/// A request body that fails once its deadline has passed.
pub struct TimedBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    limit: Duration,
}

impl TimedBody {
    pub fn new(inner: Incoming, limit: Duration) -> Self {
        TimedBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(limit)),
            limit,
        }
    }
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(BodyTimedOut(this.limit).into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether a connection has a request in flight, and since when it has
/// had none.
#[derive(Debug)]
pub struct Activity {
    in_flight: AtomicUsize,
    last_finished: std::sync::Mutex<Instant>,
}

/// Marks one request in flight until dropped.
pub struct InFlight(Arc<Activity>);

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Activity {
            in_flight: AtomicUsize::new(0),
            last_finished: std::sync::Mutex::new(Instant::now()),
        })
    }

    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    fn idle_since(&self) -> Option<Instant> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        self.last_finished.lock().ok().map(|at| *at)
    }

    /// Returns once the connection has had no request in flight for `idle`.
    pub async fn idle_for(&self, idle: Duration) {
        let mut check_at = Instant::now() + idle;
        loop {
            tokio::time::sleep_until(check_at).await;
            match self.idle_since() {
                Some(since) if since + idle <= Instant::now() => return,
                Some(since) => check_at = since + idle,
                None => check_at = Instant::now() + idle,
            }
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut at) = self.0.last_finished.lock() {
            *at = Instant::now();
        }
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Accepts TLS connections and serves `app` on each, with the peer's
/// address and (when it presented one) its verified certificate, within
/// the limits above.
pub(super) async fn accept(
    name: &'static str,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    limits: HttpsLimits,
    shutdown: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(tls);
    let slots = Arc::new(Semaphore::new(
        limits.max_connections.min(Semaphore::MAX_PERMITS),
    ));
    let mut accepting = Acceptor::new(name);
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let Some((stream, peer)) = accepting.accept(&listener, &shutdown).await else {
            break;
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let handshake = tokio::time::timeout(limits.header_timeout, acceptor.accept(stream));
            let tls = match handshake.await {
                Ok(Ok(tls)) => tls,
                _ => {
                    debug!(%peer, "HTTPS handshake failed");
                    return;
                }
            };
            let certificate = PeerCertificate(
                tls.get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|leaf| Arc::from(leaf.as_ref())),
            );
            let app = app
                .layer(axum::Extension(Peer(peer)))
                .layer(axum::Extension(certificate));
            let activity = Activity::new();
            let service = {
                let activity = activity.clone();
                hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let in_flight = activity.begin();
                    let request = request.map(|body| {
                        axum::body::Body::new(TimedBody::new(body, limits.body_timeout))
                    });
                    let mut app = app.clone();
                    async move {
                        let response = tower::Service::call(&mut app, request).await;
                        drop(in_flight);
                        response
                    }
                })
            };
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(tls), service);
            tokio::select! {
                r = connection => if let Err(e) = r { debug!(%peer, error = %e, "HTTPS connection"); },
                () = activity.idle_for(limits.idle_timeout) => debug!(%peer, "HTTPS connection idle; closed"),
                () = shutdown.cancelled() => {}
            }
        });
    }
}
