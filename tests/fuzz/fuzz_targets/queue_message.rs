//! The workers' other queue messages: realtime (events and notices), jobs, files.
#![no_main]

use domain::file::FilesMessage;
use domain::{JobMessage, JobWork, RealtimeMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &str| {
    let _ = RealtimeMessage::parse(body);
    let _ = JobMessage::parse(body);
    let _ = JobWork::parse(body);
    let _ = FilesMessage::parse(body);
});
