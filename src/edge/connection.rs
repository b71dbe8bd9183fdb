//! Slow and idle clients: the per-connection deadline for request headers and
//! the per-request timeouts.
//!
//! Pingora bounds each read of a request header, not the whole header, so a
//! client sending one byte a second would hold its connection for ever.
//! [`ClientConnections`] runs each HTTP/1 connection beside a watchdog that
//! closes it when a request header is not complete in time: within
//! `header_timeout` of the connection's start, and within `idle_timeout +
//! header_timeout` of the end of the previous response. [`RequestProgress`], a
//! Pingora module, tells the watchdog when a header has been read and when a
//! response has ended. [`SessionLimits`] sets the idle (keepalive) and body
//! timeouts of every HTTP/1 request.

use crate::config::ClientLimits;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream, ServerApp};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::listeners::ALPN;
use pingora::modules::http::{HttpModule, HttpModuleBuilder, Module};
use pingora::protocols::http::v2::server::H2Options;
use pingora::protocols::http::ServerSession;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::time::Instant;

/// The phase of one connection, shared by its requests and its watchdog:
/// waiting for a request header until a deadline, or serving a request (no
/// deadline: the body and origin timeouts apply). Requests only store into
/// an atomic, so they never wake the watchdog; it wakes at the deadlines it
/// last saw, and sleeps again when the deadline has moved.
struct ConnectionClock {
    /// [`SERVING`], or the header deadline in ms after `epoch`.
    state: AtomicU64,
    epoch: Instant,
    /// Idle time plus header time: the budget after a response.
    between_requests: std::time::Duration,
}

/// [`ConnectionClock::state`] while a request is served.
const SERVING: u64 = u64::MAX;

tokio::task_local! {
    /// The clock of the connection the current task serves (HTTP/1 only).
    static CLOCK: Arc<ConnectionClock>;
}

impl ConnectionClock {
    /// A clock waiting for the first request header for `header_timeout`.
    fn new(header_timeout: std::time::Duration, between_requests: std::time::Duration) -> Self {
        let clock = Self {
            state: AtomicU64::new(0),
            epoch: Instant::now(),
            between_requests,
        };
        clock.wait_header(header_timeout);
        clock
    }

    /// Waiting for a header, until `budget` from now (rounded up to the ms).
    fn wait_header(&self, budget: std::time::Duration) {
        let deadline = self.epoch.elapsed() + budget;
        let ms = u64::try_from(deadline.as_millis()).unwrap_or(SERVING - 1) + 1;
        self.state.store(ms.min(SERVING - 1), Ordering::Relaxed);
    }

    fn header_read(&self) {
        self.state.store(SERVING, Ordering::Relaxed);
    }

    fn response_done(&self) {
        self.wait_header(self.between_requests);
    }

    /// The header deadline, or `None` while serving.
    fn deadline(&self) -> Option<Instant> {
        match self.state.load(Ordering::Relaxed) {
            SERVING => None,
            ms => Some(self.epoch + std::time::Duration::from_millis(ms)),
        }
    }
}

/// Runs `f` on the current connection's clock, if the task serves one.
fn with_clock(f: impl FnOnce(&ConnectionClock)) {
    let _ = CLOCK.try_with(|clock| f(clock));
}

/// Resolves when the connection has been waiting for a request header past
/// its deadline; never while a request is being served. It wakes only at
/// deadlines (or every `between_requests` while serving), never per request.
async fn watchdog(clock: Arc<ConnectionClock>) {
    loop {
        match clock.deadline() {
            Some(deadline) if deadline <= Instant::now() => return,
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => tokio::time::sleep(clock.between_requests).await,
        }
    }
}

/// How long connections accepted just before the listeners stopped get to
/// deliver their first request before idle connections are dropped.
const FRESH_REQUEST_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// The proxy's connections, each HTTP/1 one under a header deadline. HTTP/2
/// connections are left to the HTTP/2 layer (its header-size and stream
/// limits, and `idle_timeout` between streams).
pub struct ClientConnections<A> {
    app: Arc<A>,
    limits: ClientLimits,
}

impl<A> ClientConnections<A> {
    /// Wraps the application that serves the connections.
    pub fn new(app: A, limits: ClientLimits) -> Self {
        Self {
            app: Arc::new(app),
            limits,
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for ClientConnections<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            return self.app.process_new(stream, shutdown).await;
        }
        let clock = Arc::new(ConnectionClock::new(
            self.limits.header_timeout,
            self.limits.idle_timeout + self.limits.header_timeout,
        ));
        let serve = CLOCK.scope(clock.clone(), self.app.process_new(stream, shutdown));
        tokio::select! {
            biased;
            reusable = serve => reusable,
            _ = watchdog(clock) => {
                // Dropping the connection's future closes its socket.
                log::debug!("closed a connection whose request header was not complete in time");
                None
            }
        }
    }

    /// Called once the listeners have stopped accepting (shutdown or
    /// upgrade). Pingora then drops every connection still waiting for a
    /// request header, including one accepted an instant ago whose request is
    /// on its way: that client would see its connection closed unanswered.
    /// Waiting [`FRESH_REQUEST_GRACE`] first lets those requests arrive and be
    /// served (with `Connection: close`, as the server is shutting down).
    async fn cleanup(&self) {
        tokio::time::sleep(FRESH_REQUEST_GRACE).await;
        self.app.cleanup().await;
    }
}

/// The idle and body timeouts of every HTTP/1 request, and the server options
/// (requests per connection, HTTP/2 idle timeout) of the proxy it wraps.
pub struct SessionLimits<A> {
    app: Arc<A>,
    options: HttpServerOptions,
    /// Whole seconds, at least one (Pingora's keepalive unit).
    idle_secs: u64,
    body_timeout: std::time::Duration,
}

impl<A> SessionLimits<A> {
    /// Wraps the HTTP application with these limits and server options.
    pub fn new(app: A, limits: &ClientLimits, options: HttpServerOptions) -> Self {
        Self {
            app: Arc::new(app),
            options,
            idle_secs: limits.idle_timeout.as_secs_f64().ceil().max(1.0) as u64,
            body_timeout: limits.body_timeout,
        }
    }
}

/// Pingora's server options for these limits: `max_requests_per_connection`
/// on HTTP/1.1, `idle_timeout` on HTTP/2, no cleartext HTTP/2.
pub fn server_options(limits: &ClientLimits) -> HttpServerOptions {
    let mut options = HttpServerOptions::default();
    // Pingora counts reuses: the first request is not one.
    options.keepalive_request_limit = Some(limits.max_requests_per_connection.saturating_sub(1));
    options.h2_idle_timeout = Some(limits.idle_timeout);
    options.h2c = false;
    options
}

#[async_trait]
impl<A: HttpServerApp + Send + Sync + 'static> HttpServerApp for SessionLimits<A> {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        if !session.is_http2() {
            // `None` means no reuse (shutting down): leave it so.
            if session.get_keepalive().is_some() {
                session.set_keepalive(Some(self.idle_secs));
            }
            session.set_read_timeout(Some(self.body_timeout));
        }
        self.app.process_new_http(session, shutdown).await
    }

    fn h2_options(&self) -> Option<H2Options> {
        self.app.h2_options()
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        Some(&self.options)
    }

    async fn http_cleanup(&self) {
        self.app.http_cleanup().await;
    }
}

/// Tells the connection's watchdog when a request header has been read and
/// when its response has ended.
pub struct RequestProgress;

impl RequestProgress {
    /// The module's builder, for `HttpModules::add_module`.
    pub fn module() -> Box<dyn HttpModuleBuilder + Send + Sync> {
        Box::new(RequestProgressBuilder)
    }
}

struct RequestProgressBuilder;

impl HttpModuleBuilder for RequestProgressBuilder {
    fn init(&self) -> Module {
        Box::new(RequestProgress)
    }
}

#[async_trait]
impl HttpModule for RequestProgress {
    async fn request_header_filter(&mut self, _req: &mut RequestHeader) -> pingora::Result<()> {
        with_clock(ConnectionClock::header_read);
        Ok(())
    }

    async fn response_header_filter(
        &mut self,
        resp: &mut ResponseHeader,
        end_of_stream: bool,
    ) -> pingora::Result<()> {
        if end_of_stream && !resp.status.is_informational() {
            with_clock(ConnectionClock::response_done);
        }
        Ok(())
    }

    fn response_body_filter(
        &mut self,
        _body: &mut Option<Bytes>,
        end_of_stream: bool,
    ) -> pingora::Result<()> {
        if end_of_stream {
            with_clock(ConnectionClock::response_done);
        }
        Ok(())
    }

    fn response_done_filter(&mut self) -> pingora::Result<Option<Bytes>> {
        with_clock(ConnectionClock::response_done);
        Ok(None)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_fires_only_while_waiting_for_a_header() {
        let clock = Arc::new(ConnectionClock::new(
            Duration::from_secs(2),
            Duration::from_secs(5),
        ));
        let dog = tokio::spawn(watchdog(clock.clone()));
        tokio::time::sleep(Duration::from_secs(1)).await;
        clock.header_read();
        // Serving: no deadline, however long.
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert!(!dog.is_finished());
        clock.response_done();
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(!dog.is_finished());
        // A second request and response within the budget move the deadline.
        clock.header_read();
        clock.response_done();
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(!dog.is_finished());
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(dog.is_finished());
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_header_has_header_timeout() {
        let clock = Arc::new(ConnectionClock::new(
            Duration::from_secs(2),
            Duration::from_secs(5),
        ));
        let dog = tokio::spawn(watchdog(clock));
        tokio::time::sleep(Duration::from_millis(1900)).await;
        assert!(!dog.is_finished());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(dog.is_finished());
    }
}
