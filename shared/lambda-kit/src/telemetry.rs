//! JSON log lines via `tracing`. Spans carry request, correlation and event ids; tokens and
//! personal data beyond user ids are never recorded.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the JSON subscriber. `RUST_LOG` overrides the default `info` level with directives
/// of the form `info` or `warn,aws_smithy_runtime=debug` (targets and levels: a `Targets`
/// filter, which needs no regular expressions, unlike `EnvFilter`'s span and field filters —
/// that engine was a tenth of each binary, issue 7).
pub fn init() {
    let fmt = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false);
    tracing_subscriber::registry()
        .with(fmt)
        .with(filter(std::env::var("RUST_LOG").ok().as_deref()))
        .init();
}

/// The filter for a `RUST_LOG` value: `info` when unset or not understood.
fn filter(directives: Option<&str>) -> Targets {
    directives
        .and_then(|d| d.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO))
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::filter;

    #[test]
    fn rust_log_sets_levels_per_target_and_defaults_to_info() {
        let default = filter(None);
        assert!(default.would_enable("episodes_api", &Level::INFO));
        assert!(!default.would_enable("episodes_api", &Level::DEBUG));
        let custom = filter(Some("warn,aws_smithy_runtime=debug"));
        assert!(custom.would_enable("aws_smithy_runtime::client", &Level::DEBUG));
        assert!(!custom.would_enable("episodes_api", &Level::INFO));
        assert!(filter(Some("episodes=loud")).would_enable("x", &Level::INFO));
    }
}
