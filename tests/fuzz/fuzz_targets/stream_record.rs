//! A DynamoDB Streams batch as the relay receives it: the records, then each new image's
//! `payload` as a domain event.
#![no_main]

use aws_lambda_events::event::dynamodb::Event;
use domain::DomainEvent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(event) = serde_json::from_slice::<Event>(bytes) else {
        return;
    };
    for record in &event.records {
        let image = serde_json::to_value(&record.change.new_image).unwrap_or_default();
        if let Some(payload) = image.pointer("/payload/S").and_then(|v| v.as_str()) {
            let _ = DomainEvent::from_message(payload);
        }
    }
});
