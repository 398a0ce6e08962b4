//! The cross-process tests, in one binary: one link of the workspace instead of one per file.
//! Each module is one area (its own doc comment says what it covers); they share the test kit
//! in `chat_tests` (`tests/src/`). nextest runs every test in its own process, so tests never
//! share a runtime or state; filter by module as before, e.g. `./ops/test conversation_flow`.

mod abuse_limits;
mod access_cache;
mod attachments;
mod authorization;
mod bad_input;
mod channels;
mod concurrency_and_events;
mod conversation_flow;
mod exports;
mod fuzz;
mod gateway_faults;
mod gateway_fleet;
mod health_and_docs;
mod large_groups;
mod local_stack;
mod notifications;
mod read_plans;
mod request_bodies;
mod s3_storage;
mod sessions;
mod telemetry;
mod web_client;
mod write_path;
