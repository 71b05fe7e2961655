//! Prometheus metrics, served at `GET /metrics` in the OpenMetrics text format.
//!
//! One [`Metrics`] per process: the composition root creates it and hands it to every handler
//! through [`AppState`](crate::AppState) — there is no global registry. Label values are
//! bounded: route *patterns* (never raw paths), known event names, `&'static str` kinds. The
//! hub's gauges (open sockets, queued pushes) are read lazily at scrape time, off the hot path.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpResponse, web};
use chat_domain::error::DomainError;
use chat_domain::message::GroupCommitStats;
use chat_domain::realtime::RateKind;
use chat_protocol::ws::client;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::AppState;
use crate::realtime::hub::Hub;

/// What Prometheus expects for the OpenMetrics text exposition.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Latency buckets, in seconds (1 ms … 10 s).
const LATENCY_BUCKETS: [f64; 13] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The client events the gateway dispatches: the only values of the `event` label besides
/// `unknown` (keep in step with `gateway::Socket::dispatch`).
const CLIENT_EVENTS: [&str; 13] = [
    client::PING,
    client::JOIN_WORKSPACE,
    client::JOIN_CONVERSATION,
    client::LEAVE_CONVERSATION,
    client::SEND_MESSAGE,
    client::EDIT_MESSAGE,
    client::DELETE_MESSAGE,
    client::ADD_REACTION,
    client::TYPING_START,
    client::TYPING_STOP,
    client::MARK_AS_READ,
    client::UPDATE_PRESENCE,
    client::RESUME,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabels {
    transport: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// Where a message send came in.
#[derive(Clone, Copy, Debug)]
pub enum Transport {
    /// `POST /chat/conversations/{id}/messages`.
    Rest,
    /// The gateway's `send_message`.
    Ws,
}

impl Transport {
    fn label(self) -> &'static str {
        match self {
            Self::Rest => "rest",
            Self::Ws => "ws",
        }
    }
}

/// The registry and the metric families the delivery layer records into.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http_requests: Family<RequestLabels, Counter>,
    http_duration: Histograms<RouteLabels>,
    frames_in: Family<EventLabels, Counter>,
    message_send: Histograms<TransportLabels>,
    rate_limited: Family<KindLabels, Counter>,
}

impl Metrics {
    /// Every `chat_*` family; the hub's counters and gauges are read from `hub`.
    #[must_use]
    pub fn new(hub: &Arc<Hub>) -> Self {
        let mut registry = Registry::with_prefix("chat");
        let http_requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests by method, route pattern and status", http_requests.clone());
        let http_duration: Histograms<RouteLabels> = Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "http_request_duration",
            "HTTP request latency by method and route pattern",
            Unit::Seconds,
            http_duration.clone(),
        );
        let frames_in = Family::<EventLabels, Counter>::default();
        registry.register("ws_frames_in", "WebSocket client frames by event", frames_in.clone());
        registry.register("ws_frames_out", "Pushes handed to socket queues", hub.frames_out.clone());
        registry.register(
            "ws_slow_consumer_disconnects",
            "Sockets closed (1013) for a full push queue",
            hub.slow_consumers.clone(),
        );
        let message_send: Histograms<TransportLabels> = Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "message_send",
            "Time from receiving a message send to its committed result, by transport",
            Unit::Seconds,
            message_send.clone(),
        );
        let rate_limited = Family::<KindLabels, Counter>::default();
        registry.register("rate_limited", "Requests refused by a rate limit, by kind", rate_limited.clone());
        registry.register_collector(Box::new(HubGauges(Arc::clone(hub))));
        Self { registry, http_requests, http_duration, frames_in, message_send, rate_limited }
    }

    /// Exposes the store's group commit — transactions of message inserts and the messages
    /// they carried — read from `stats` at scrape time. Their ratio is the mean batch: 1 when
    /// every send pays a commit (and a WAL sync or fsync) of its own.
    pub fn count_batches(&mut self, stats: impl Fn() -> GroupCommitStats + Send + Sync + 'static) {
        self.registry.register_collector(Box::new(BatchCounters(Box::new(stats))));
    }

    /// One served request; `route` is the matched pattern (or `<unmatched>`).
    pub(crate) fn http_request(&self, method: &'static str, route: String, status: u16, elapsed: Duration) {
        let labels = RequestLabels { method, route, status };
        self.http_requests.get_or_create(&labels).inc();
        let labels = RouteLabels { method, route: labels.route };
        self.http_duration.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }

    /// One client frame; `None` when it was not a decodable event frame.
    pub(crate) fn frame_in(&self, event: Option<&str>) {
        let event = event.and_then(|e| CLIENT_EVENTS.iter().find(|known| **known == e)).copied().unwrap_or("unknown");
        self.frames_in.get_or_create(&EventLabels { event }).inc();
    }

    /// The outcome of a message send that started at `started`: a committed send is timed, a
    /// rate-limited one counted.
    pub(crate) fn message_sent<T>(&self, transport: Transport, started: Instant, result: &Result<T, DomainError>) {
        match result {
            Ok(_) => self
                .message_send
                .get_or_create(&TransportLabels { transport: transport.label() })
                .observe(started.elapsed().as_secs_f64()),
            Err(DomainError::RateLimited { .. }) => self.rate_limited(RateKind::Messages),
            Err(_) => {}
        }
    }

    /// A request refused by the `kind` limit.
    pub(crate) fn rate_limited(&self, kind: RateKind) {
        let kind = match kind {
            RateKind::Messages => "messages",
            RateKind::Connections => "connections",
            RateKind::Uploads => "uploads",
            RateKind::KeyClaims => "key_claims",
        };
        self.rate_limited.get_or_create(&KindLabels { kind }).inc();
    }

    /// The OpenMetrics text exposition of every family.
    ///
    /// # Errors
    /// Only if formatting fails (it does not, into a `String`).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// The label value for a method: the standard ones, anything else `OTHER`.
pub(crate) fn method_label(method: &actix_web::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "OTHER",
    }
}

/// The hub's gauges, computed when scraped.
#[derive(Debug)]
struct HubGauges(Arc<Hub>);

impl Collector for HubGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gauges = [
            ("ws_connections", "Open WebSocket connections on this node.", self.0.connections()),
            ("ws_queue_depth", "Pushes queued for local sockets, not yet written.", self.0.queued()),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}

/// The store's group-commit counters, read when scraped.
struct BatchCounters(Box<dyn Fn() -> GroupCommitStats + Send + Sync>);

impl std::fmt::Debug for BatchCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BatchCounters")
    }
}

impl Collector for BatchCounters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = (self.0)();
        let counters = [
            ("message_batches", "Group-commit transactions of message inserts.", stats.batches),
            ("message_batched", "Messages carried by those transactions.", stats.messages),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        Ok(())
    }
}

/// `GET /metrics` (unauthenticated, not in the OpenAPI document).
pub(crate) async fn scrape(state: web::Data<AppState>) -> HttpResponse {
    match state.metrics.encode() {
        Ok(text) => HttpResponse::Ok().insert_header((CONTENT_TYPE, OPENMETRICS)).body(text),
        Err(_) => crate::error::error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal", "metrics unavailable"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(metrics: &Metrics) -> String {
        metrics.encode().unwrap_or_else(|e| panic!("encode: {e}"))
    }

    #[test]
    fn http_requests_are_labelled_by_pattern_and_timed() {
        let metrics = Metrics::new(&Hub::new());
        for _ in 0..2 {
            metrics.http_request("GET", "/workspaces/{id}".to_owned(), 200, Duration::from_millis(3));
        }
        let text = encoded(&metrics);
        assert!(
            text.contains("chat_http_requests_total{method=\"GET\",route=\"/workspaces/{id}\",status=\"200\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE chat_http_request_duration_seconds histogram\n"), "{text}");
        assert!(
            text.contains("chat_http_request_duration_seconds_count{method=\"GET\",route=\"/workspaces/{id}\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "chat_http_request_duration_seconds_bucket{le=\"0.0025\",method=\"GET\",route=\"/workspaces/{id}\"} 0\n"
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn unknown_events_share_one_label() {
        let metrics = Metrics::new(&Hub::new());
        metrics.frame_in(Some("send_message"));
        metrics.frame_in(Some("drop_tables"));
        metrics.frame_in(Some("../../etc"));
        metrics.frame_in(None);
        let text = encoded(&metrics);
        assert!(text.contains("chat_ws_frames_in_total{event=\"send_message\"} 1\n"), "{text}");
        assert!(text.contains("chat_ws_frames_in_total{event=\"unknown\"} 3\n"), "{text}");
        assert_eq!(text.matches("chat_ws_frames_in_total{").count(), 2, "{text}");
    }

    #[test]
    fn sends_are_timed_when_committed_and_counted_when_rate_limited() {
        let metrics = Metrics::new(&Hub::new());
        metrics.message_sent(Transport::Ws, Instant::now(), &Ok::<(), DomainError>(()));
        metrics.message_sent::<()>(
            Transport::Rest,
            Instant::now(),
            &Err(DomainError::RateLimited { retry_after: Duration::from_secs(1) }),
        );
        metrics.message_sent::<()>(Transport::Rest, Instant::now(), &Err(DomainError::NotFound));
        metrics.rate_limited(RateKind::Connections);
        let text = encoded(&metrics);
        assert!(text.contains("chat_message_send_seconds_count{transport=\"ws\"} 1\n"), "{text}");
        assert!(!text.contains("transport=\"rest\""), "{text}");
        assert!(text.contains("chat_rate_limited_total{kind=\"messages\"} 1\n"), "{text}");
        assert!(text.contains("chat_rate_limited_total{kind=\"connections\"} 1\n"), "{text}");
    }

    #[test]
    fn hub_gauges_and_counters_are_exposed_from_the_start() {
        let text = encoded(&Metrics::new(&Hub::new()));
        for line in [
            "chat_ws_connections 0\n",
            "chat_ws_queue_depth 0\n",
            "chat_ws_frames_out_total 0\n",
            "chat_ws_slow_consumer_disconnects_total 0\n",
        ] {
            assert!(text.contains(line), "{line:?} missing in {text}");
        }
    }

    #[test]
    fn group_commit_counters_are_read_at_each_scrape() {
        let counters = Arc::new(chat_domain::message::GroupCommitCounters::default());
        let mut metrics = Metrics::new(&Hub::new());
        let source = Arc::clone(&counters);
        metrics.count_batches(move || source.stats());
        assert!(encoded(&metrics).contains("chat_message_batches_total 0\n"));
        counters.record(3);
        counters.record(1);
        let text = encoded(&metrics);
        assert!(text.contains("chat_message_batches_total 2\n"), "{text}");
        assert!(text.contains("chat_message_batched_total 4\n"), "{text}");
        assert!(text.contains("# TYPE chat_message_batched counter\n"), "{text}");
    }

    #[test]
    fn queue_depth_sums_what_local_sockets_have_not_written() {
        use crate::realtime::hub::{Kill, Outbound};
        let hub = Hub::new();
        let metrics = Metrics::new(&hub);
        let mut receivers = Vec::new();
        for queued in [2, 3] {
            let (tx, rx) = tokio::sync::mpsc::channel(8);
            hub.register(uuid::Uuid::new_v4(), tx.clone(), Arc::new(Kill::default()));
            for _ in 0..queued {
                let out = Arc::new(Outbound { frame: "{}".into(), conversation: None, seq: None });
                tx.try_send(out).unwrap_or_else(|_| panic!("queue has room"));
            }
            receivers.push(rx);
        }
        let text = encoded(&metrics);
        assert!(text.contains("chat_ws_connections 2\n"), "{text}");
        assert!(text.contains("chat_ws_queue_depth 5\n"), "{text}");
        let _ = receivers[0].try_recv();
        assert!(encoded(&metrics).contains("chat_ws_queue_depth 4\n"));
    }
}
