//! Metrics of the API process, exported over OTLP when telemetry is configured:
//! request durations by method and status, messages persisted, events published and
//! failed, and database pool use.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use chat_service::ChatService;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, ObservableCounter, ObservableGauge};
use poem::{Endpoint, IntoResponse, Request, Response};

/// Instruments; observable ones read the service's counters when collected.
pub struct ApiMetrics {
    request_duration: Histogram<f64>,
    _observers: (Vec<ObservableCounter<u64>>, Vec<ObservableGauge<u64>>),
}

impl ApiMetrics {
    pub fn new(service: &ChatService) -> Arc<Self> {
        let meter = chat_telemetry::meter("chat-api");
        let request_duration = meter
            .f64_histogram("http.server.request.duration")
            .with_unit("s")
            .with_description("Duration of HTTP requests")
            .build();
        let counter =
            |name: &'static str, description: &'static str, read: fn(&ChatService) -> u64| {
                let svc = service.clone();
                meter
                    .u64_observable_counter(name)
                    .with_description(description)
                    .with_callback(move |observer| observer.observe(read(&svc), &[]))
                    .build()
            };
        let counters = vec![
            counter("chat.messages.persisted", "Messages committed", |s| {
                s.stats().messages_persisted.load(Ordering::Relaxed)
            }),
            counter(
                "chat.events.published",
                "Events published on the bus",
                |s| s.stats().events_published.load(Ordering::Relaxed),
            ),
            counter(
                "chat.events.publish_failures",
                "Events that could not be published",
                |s| s.stats().publish_failures.load(Ordering::Relaxed),
            ),
        ];
        let svc = service.clone();
        let pool = meter
            .u64_observable_gauge("db.client.connections.usage")
            .with_description("Database connections by state")
            .with_callback(move |observer| {
                let (size, idle) = svc.store().pool_usage();
                let idle = idle as u64;
                observer.observe(idle, &[KeyValue::new("state", "idle")]);
                observer.observe(
                    u64::from(size).saturating_sub(idle),
                    &[KeyValue::new("state", "used")],
                );
            })
            .build();
        Arc::new(Self {
            request_duration,
            _observers: (counters, vec![pool]),
        })
    }
}

/// Middleware body: times the request and records it with its method and status.
pub async fn record<E: Endpoint>(
    metrics: Arc<ApiMetrics>,
    next: &E,
    req: Request,
) -> poem::Result<Response> {
    let method = req.method().to_string();
    let started = Instant::now();
    let result = next.call(req).await.map(IntoResponse::into_response);
    let status = match &result {
        Ok(resp) => resp.status().as_u16(),
        Err(err) => err.status().as_u16(),
    };
    metrics.request_duration.record(
        started.elapsed().as_secs_f64(),
        &[
            KeyValue::new("http.request.method", method),
            KeyValue::new("http.response.status_code", i64::from(status)),
        ],
    );
    result
}
