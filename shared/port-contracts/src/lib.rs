//! The contract of each port, as one set of test functions: run against the in-memory
//! implementation in `cargo test` (`tests/memory.rs`) and against the AWS adapter on the
//! local emulator in `make test` (`tests/emulator.rs`), so the fakes the handler tests trust
//! are shown to behave as the adapters do — conditions, idempotency, pagination, limits.
//!
//! A contract is an async function over a [`World`]: the ports, and how to set up what they
//! need (an episode, a client's upload). It panics on a breach, like any test.

use std::future::Future;

use domain::store::activity::{ActivityReader, ActivityWriter, EpisodeLabels};
use domain::store::analytics::{AnalyticsReader, AnalyticsWriter};
use domain::store::export::Exports;
use domain::store::file::{FileReader, FileWriter};
use domain::store::job::{JobReader, JobWriter};
use domain::store::notification::{Audiences, Inbox, NotificationWriter};
use domain::store::object::{ObjectParts, ObjectReader, ObjectTransfers, ObjectWriter};
use domain::store::realtime::EventHistory;
use domain::store::realtime::{
    Connections, PresenceReader, PresenceRounds, Subscribe, Subscriptions,
};
use domain::store::relay::EventPublisher;
use domain::store::search::{SearchIndexReader, SearchIndexWriter};
use domain::store::{
    DeadLetters, EpisodeExistence, EpisodeLister, EpisodeReader, EpisodeWriter, MessageSender,
};
use domain::{EpisodeId, EventType};

pub mod activity;
pub mod analytics;
pub mod episodes;
pub mod exports;
pub mod files;
pub mod jobs;
pub mod notifications;
pub mod objects;
pub mod queues;
pub mod realtime;
pub mod sample;
pub mod search;

/// The ports under test, over one set of tables and one bucket.
pub trait World: Sync {
    type Episodes: EpisodeReader + EpisodeLister + EpisodeWriter + Sync;
    /// Reads the events the episodes port wrote (the events table).
    type History: EventHistory + Sync;
    type Files: FileReader + FileWriter + EpisodeExistence + Sync;
    type Jobs: JobReader + JobWriter + EpisodeExistence + Sync;
    type Objects: ObjectReader + ObjectWriter + ObjectTransfers + ObjectParts + Sync;
    type Exports: Exports + Sync;
    type Search: SearchIndexWriter + SearchIndexReader + Sync;
    type Analytics: AnalyticsWriter + AnalyticsReader + Sync;
    type Activity: ActivityWriter + ActivityReader + Sync;
    type Labels: EpisodeLabels + Sync;
    type Notifications: Audiences + NotificationWriter + Inbox + Sync;
    type Realtime: Connections + Subscriptions + PresenceReader + PresenceRounds + Sync;
    type Subscriber: Subscribe + EpisodeExistence + Sync;

    fn episodes(&self) -> &Self::Episodes;
    fn history(&self) -> &Self::History;
    fn files(&self) -> &Self::Files;
    fn jobs(&self) -> &Self::Jobs;
    fn objects(&self) -> &Self::Objects;
    fn exports(&self) -> &Self::Exports;
    fn search(&self) -> &Self::Search;
    fn analytics(&self) -> &Self::Analytics;
    fn activity(&self) -> &Self::Activity;
    fn labels(&self) -> &Self::Labels;
    fn notifications(&self) -> &Self::Notifications;
    fn realtime(&self) -> &Self::Realtime;
    fn subscriber(&self) -> &Self::Subscriber;

    /// A new episode ([`sample::episode`]) that exists, watched by its creator
    /// ([`sample::CREATOR`]) as the episodes API leaves it.
    fn episode(&self) -> impl Future<Output = EpisodeId> + Send;

    /// An episode that exists, written without an event. On the local stack an event about an
    /// episode is broadcast to its subscribers, and the broadcaster rightly forgets a
    /// connection API Gateway does not know — which every connection of these contracts is.
    fn quiet_episode(&self) -> impl Future<Output = EpisodeId> + Send;

    /// Deletes it (a tombstone, as the episodes API leaves).
    fn delete_episode(&self, id: EpisodeId) -> impl Future<Output = ()> + Send;

    /// The types of the events written about the episode, oldest first.
    fn events(&self, episode: EpisodeId) -> impl Future<Output = Vec<EventType>> + Send;

    /// Plays the client: uploads `bytes` as part `part` of a multipart upload.
    fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part: u32,
        bytes: Vec<u8>,
    ) -> impl Future<Output = ()> + Send;
}

/// Where a queue contract looks for what arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// [`QueueWorld::queue`]'s queue.
    Queue,
    /// [`QueueWorld::parking`]'s dead-letter queue.
    DeadLetters,
    /// The queue [`QueueWorld::publisher`] sends `Queue::Activity` to.
    Published,
}

/// The queue ports, each over a queue of its own that nothing else reads.
pub trait QueueWorld: Sync {
    type Queue: MessageSender + Sync;
    type Parking: DeadLetters + Sync;
    type Publisher: EventPublisher + Sync;

    fn queue(&self) -> &Self::Queue;
    fn parking(&self) -> &Self::Parking;
    fn publisher(&self) -> &Self::Publisher;

    /// The bodies that reached `sink`, as a consumer receives them: waits (a few seconds at
    /// most) until `count` have arrived, and takes them off the queue.
    fn received(&self, sink: Sink, count: usize) -> impl Future<Output = Vec<String>> + Send;

    /// Removes the world's queues.
    fn finish(&self) -> impl Future<Output = ()> + Send;
}

/// One `#[tokio::test]` per queue contract, each on a fresh world from `$world`.
#[macro_export]
macro_rules! queue_contract_tests {
    ($world:expr) => {
        $crate::queue_contract_tests!(@each $world;
            what_is_sent_arrives_once_with_its_body,
            a_parked_message_keeps_its_body,
            a_batch_inside_the_limits_is_accepted_whole,
            a_batch_beyond_ten_entries_is_refused_whole,
        );
    };
    (@each $world:expr; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let world = $world;
                $crate::queues::$name(&world).await;
                $crate::QueueWorld::finish(&world).await;
            }
        )+
    };
}

/// One `#[tokio::test]` per contract, each on a fresh world from `$world` (an async
/// expression).
#[macro_export]
macro_rules! contract_tests {
    ($world:expr) => {
        $crate::contract_tests!(@each $world;
            episodes::an_episode_is_created_once_with_its_event_and_read_back,
            episodes::an_idempotency_key_creates_one_episode_and_names_it_again,
            episodes::an_update_is_written_only_from_the_version_read,
            episodes::a_deletion_is_the_creators_or_an_admins_and_leaves_a_tombstone,
            episodes::the_list_comes_newest_first_in_pages_by_status,
            episodes::many_episodes_walk_in_small_pages_each_once_newest_first,
            episodes::an_episodes_events_are_read_back_after_a_given_one,
            files::create_needs_a_live_episode,
            files::pending_becomes_available_once_with_its_event,
            files::an_event_about_a_file_needs_it_available,
            files::only_a_pending_record_is_withdrawn,
            files::delete_removes_the_record_with_its_event,
            files::a_file_made_available_is_created_once,
            files::metadata_is_recorded_on_existing_files_only,
            files::an_episodes_files_come_in_pages_in_upload_order,
            jobs::create_checks_the_episode_and_the_file,
            jobs::an_idempotency_key_names_one_job_per_user,
            jobs::a_move_is_written_only_if_the_job_is_as_read,
            jobs::a_cancel_request_stops_every_move_but_the_stop,
            jobs::a_dead_workers_job_is_taken_over_only_after_its_lease,
            jobs::an_episodes_jobs_come_in_pages_and_filter_by_state,
            jobs::an_item_over_400_kb_is_refused_and_nothing_changes,
            jobs::a_job_id_is_created_once,
            jobs::upload_rules_are_set_read_and_cleared_for_live_episodes_only,
            objects::a_missing_object_is_none_and_deleting_it_is_fine,
            objects::an_object_put_is_read_back_whole,
            objects::a_multipart_upload_completes_from_its_parts_once,
            objects::parts_sent_from_here_make_the_object_in_order,
            exports::an_export_is_created_once_and_moves_only_from_the_state_read,
            search::one_claim_at_a_time_and_a_lost_claim_records_nothing,
            search::words_find_their_tokens_by_prefix_and_deletes_take_entries_away,
            analytics::a_timeline_is_saved_only_from_the_revision_read_with_all_its_figures,
            analytics::a_job_attempt_is_one_fact_read_by_type_and_period,
            activity::entries_are_written_once_per_event_and_read_newest_first,
            activity::a_batch_beyond_one_write_is_written_whole,
            activity::the_log_comes_in_pages_that_miss_and_repeat_nothing,
            activity::the_log_is_read_by_actor_action_and_time,
            activity::labels_name_the_episodes_that_exist,
            notifications::a_delivery_is_written_once_and_read_back,
            notifications::a_batch_grows_in_place_and_a_stale_plan_is_refused,
            notifications::two_openers_of_one_batch_cannot_both_open_it,
            notifications::a_growth_and_a_read_meanwhile_do_not_overwrite_each_other,
            notifications::deliveries_beyond_one_transaction_are_packed_and_written_in_full,
            notifications::moves_are_ones_own_and_move_both_counts,
            notifications::removed_notifications_come_off_the_counts_once,
            notifications::read_all_marks_exactly_the_unread,
            notifications::an_inbox_comes_newest_first_in_pages,
            notifications::watching_needs_an_episode_and_happens_once,
            notifications::preferences_are_kept_per_user,
            realtime::a_connection_is_known_until_closed_and_not_past_its_token,
            realtime::a_subscription_needs_an_episode_and_the_users_own_connection,
            realtime::presence_counts_connections_once_and_announces_the_first,
            realtime::a_connection_follows_at_most_twenty_episodes,
            realtime::the_last_connection_leaving_starts_a_grace_period,
            realtime::closing_a_connection_takes_its_subscriptions_and_presence,
            realtime::presence_rounds_gather_changes_and_the_latest_round_wins,
        );
    };
    (@each $world:expr; $($module:ident :: $name:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let world = $world;
                $crate::$module::$name(&world).await;
            }
        )+
    };
}
