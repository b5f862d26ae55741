//! Counts the requests the SDK clients send, so each handled request or batch can log how many
//! AWS calls it cost (retries included), how many of them went to DynamoDB, and how long it
//! waited on them: the figures the issues ask to be counted, not assumed. What a request takes
//! beyond that wait is the function's own cost.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

/// AWS calls sent since the counter was last taken.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AwsCalls {
    /// Every call, to any service.
    pub total: u64,
    /// The calls to DynamoDB among them.
    pub dynamodb: u64,
    /// The time spent between sending each call and receiving its response, summed.
    pub waiting: Duration,
    /// DynamoDB's read and write request units for those calls, as it reported them
    /// (`ReturnConsumedCapacity`, asked for by `aws_adapters::counted_dynamodb`).
    pub read_units: f64,
    pub write_units: f64,
}

#[derive(Debug, Clone, Default)]
pub struct AwsCallCounter(Arc<Counts>);

#[derive(Debug, Default)]
struct Counts {
    total: AtomicU64,
    dynamodb: AtomicU64,
    waiting_us: AtomicU64,
    /// Request units in thousandths (DynamoDB reports halves for eventually consistent reads).
    read_milli: AtomicU64,
    write_milli: AtomicU64,
}

/// When the current attempt was handed to the HTTP client.
#[derive(Debug)]
struct Sent(Instant);

impl Storable for Sent {
    type Storer = StoreReplace<Self>;
}

impl AwsCallCounter {
    /// Calls sent since the last take, resetting to zero.
    pub fn take(&self) -> AwsCalls {
        AwsCalls {
            total: self.0.total.swap(0, Ordering::Relaxed),
            dynamodb: self.0.dynamodb.swap(0, Ordering::Relaxed),
            waiting: Duration::from_micros(self.0.waiting_us.swap(0, Ordering::Relaxed)),
            read_units: milli(self.0.read_milli.swap(0, Ordering::Relaxed)),
            write_units: milli(self.0.write_milli.swap(0, Ordering::Relaxed)),
        }
    }

    /// Request units one DynamoDB call consumed, as its response reported them.
    pub fn consumed(&self, read_units: f64, write_units: f64) {
        let to_milli = |units: f64| (units.max(0.0) * 1000.0).round() as u64;
        self.0
            .read_milli
            .fetch_add(to_milli(read_units), Ordering::Relaxed);
        self.0
            .write_milli
            .fetch_add(to_milli(write_units), Ordering::Relaxed);
    }

    fn waited(&self, time: Duration) {
        let us = u64::try_from(time.as_micros()).unwrap_or(u64::MAX);
        self.0.waiting_us.fetch_add(us, Ordering::Relaxed);
    }

    fn count(&self, service: Option<&str>) {
        self.0.total.fetch_add(1, Ordering::Relaxed);
        if service == Some("DynamoDB") {
            self.0.dynamodb.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Intercept for AwsCallCounter {
    fn name(&self) -> &'static str {
        "AwsCallCounter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.count(cfg.load::<Metadata>().map(Metadata::service));
        cfg.interceptor_state().store_put(Sent(Instant::now()));
        Ok(())
    }

    fn read_after_transmit(
        &self,
        _context: &BeforeDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(Sent(at)) = cfg.load::<Sent>() {
            self.waited(at.elapsed());
        }
        Ok(())
    }
}

fn milli(n: u64) -> f64 {
    n as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_call_and_dynamodb_apart_then_resets() {
        let counter = AwsCallCounter::default();
        counter.count(Some("DynamoDB"));
        counter.count(Some("SQS"));
        counter.count(Some("DynamoDB"));
        counter.count(None);
        counter.waited(Duration::from_micros(1500));
        counter.waited(Duration::from_micros(700));
        counter.consumed(0.5, 0.0);
        counter.consumed(1.0, 2.0);
        assert_eq!(
            counter.take(),
            AwsCalls {
                total: 4,
                dynamodb: 2,
                waiting: Duration::from_micros(2200),
                read_units: 1.5,
                write_units: 2.0,
            }
        );
        assert_eq!(counter.take(), AwsCalls::default());
    }
}
