//! A WebSocket client's message.
#![no_main]

use domain::realtime::ClientMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &str| {
    if let Ok(ClientMessage::Subscribe { episode_id } | ClientMessage::Unsubscribe { episode_id }) =
        ClientMessage::parse(body)
    {
        assert_eq!(
            domain::EpisodeId::parse(&episode_id.to_string()),
            Ok(episode_id)
        );
    }
});
