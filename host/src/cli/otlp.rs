//! OpenTelemetry export (the `otlp` cargo feature): every span (a run, a step
//! attempt) goes to `$OTEL_EXPORTER_OTLP_ENDPOINT` over OTLP/HTTP, with the
//! run id as an attribute.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// Flushes and stops the exporter when dropped.
pub(crate) struct Guard(Option<SdkTracerProvider>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("flowhost: OTLP export did not flush: {e}");
        }
    }
}

/// The export layer, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
pub(crate) fn layer<S>() -> (Option<Box<dyn Layer<S> + Send + Sync>>, Guard)
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_none() {
        return (None, Guard(None));
    }
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .build()
    {
        Ok(e) => e,
        Err(e) => {
            eprintln!("flowhost: OTLP export is off: {e}");
            return (None, Guard(None));
        }
    };
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name("flowhost").build())
        .build();
    let tracer = provider.tracer("flowhost");
    let layer = tracing_opentelemetry::layer().with_tracer(tracer).boxed();
    (Some(layer), Guard(Some(provider)))
}
