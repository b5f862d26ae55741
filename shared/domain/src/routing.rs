//! Which queues hear about which events: the one routing table the relay follows.

use std::fmt;

use crate::event::EventType;

/// The SQS queues domain events are relayed to, each feeding one worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Queue {
    /// The audit trail (activity-worker): every event.
    Activity,
    /// Notifications for the people concerned (notification-worker).
    Notifications,
    /// Live updates to open WebSocket connections (broadcast-worker).
    Realtime,
    /// Files' housekeeping (files-worker): an episode's files go with it.
    Files,
    /// Jobs to run (job-worker).
    Jobs,
    /// The search index (search-worker): every change of an episode.
    Search,
    /// The production analytics (analytics-worker): episodes' changes and jobs' outcomes.
    Analytics,
}

impl Queue {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Activity => "activity",
            Self::Notifications => "notifications",
            Self::Realtime => "realtime",
            Self::Files => "files",
            Self::Jobs => "jobs",
            Self::Search => "search",
            Self::Analytics => "analytics",
        }
    }
}

impl fmt::Display for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The queues an event type goes to.
pub fn queues_for(event_type: EventType) -> &'static [Queue] {
    use EventType::*;
    match event_type {
        EpisodeCreated | EpisodeUpdated => &[
            Queue::Activity,
            Queue::Notifications,
            Queue::Realtime,
            Queue::Search,
            Queue::Analytics,
        ],
        EpisodeDeleted => &[
            Queue::Activity,
            Queue::Notifications,
            Queue::Realtime,
            Queue::Files,
            Queue::Search,
            Queue::Analytics,
        ],
        // A new file may start jobs (the episode's rules for jobs on upload).
        FileUploaded => &[Queue::Activity, Queue::Realtime, Queue::Jobs],
        FileDeleted => &[Queue::Activity, Queue::Realtime],
        FileDownloaded => &[Queue::Activity],
        // A new job, or a new attempt asked for, is work for the job worker.
        JobCreated | JobRetried => &[Queue::Activity, Queue::Realtime, Queue::Jobs],
        // Its creator hears that it failed for good; the analytics count both outcomes.
        JobFailed => &[
            Queue::Activity,
            Queue::Realtime,
            Queue::Notifications,
            Queue::Analytics,
        ],
        // The analytics measure each attempt from its start to its end.
        JobStarted | JobSucceeded | JobRetryScheduled => {
            &[Queue::Activity, Queue::Realtime, Queue::Analytics]
        }
        JobProgress | JobCancelled => &[Queue::Activity, Queue::Realtime],
        // Never in the outbox: the export worker writes its entry and notification itself.
        ActivityExported => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_of_the_outbox_reaches_the_audit_trail() {
        for t in EventType::ALL {
            if t == EventType::ActivityExported {
                // The export worker writes its entry itself (`export`); it is never relayed.
                assert!(queues_for(t).is_empty());
                continue;
            }
            assert!(queues_for(t).contains(&Queue::Activity), "{t}");
        }
    }
}
