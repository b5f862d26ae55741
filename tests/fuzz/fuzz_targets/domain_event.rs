//! An SQS message body as a domain event: refused or parsed, and what parses writes back to
//! itself.
#![no_main]

use domain::DomainEvent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &str| {
    if let Ok(event) = DomainEvent::from_message(body) {
        let again = serde_json::to_string(&event).expect("an event serialises");
        assert_eq!(DomainEvent::from_message(&again).as_ref(), Ok(&event));
    }
});
