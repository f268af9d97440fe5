//! Where guests run.
//!
//! A component runs on the runtime that serves its request, beside every
//! other, unless its manifest entry says `priority = "low"`. Then its guests
//! run on a second runtime whose threads the kernel schedules last (Linux's
//! `SCHED_IDLE`, and nice 19 where that policy is refused): while the
//! machine is busy they get only the CPU no one else wants, and any other
//! thread that wakes takes the core from them at once; when the machine is
//! idle they get all of it. A flood of CPU-heavy requests (password hashing
//! at login) then slows its own requests, not everyone's.
//!
//! Such a component also gets database pools of its own, opened on that
//! runtime. A socket is driven by the runtime that opened it, and a starved
//! runtime must not hold the sockets other requests wait on.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;
use sqlx::PgPool;

/// The nice value of the low-priority threads: the lowest priority there is.
const LOW_NICE: i32 = 19;

/// What the threads of the low-priority runtime are called (`top -H` shows it).
pub const LOW_THREAD_NAME: &str = "guest-low";

/// A component's share of the CPU when the machine is busy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Beside the server and every other component.
    #[default]
    Normal,
    /// Only the CPU nothing else at normal priority wants.
    Low,
}

/// The low-priority runtime, started the first time a component needs it
/// and kept for the life of the process, across reloads: a reload must not
/// end guests still running for the previous generation.
pub fn low_priority() -> &'static tokio::runtime::Handle {
    static LOW: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    LOW.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name(LOW_THREAD_NAME)
            .on_thread_start(lower_this_threads_priority)
            .enable_all()
            .build()
            .expect("the low-priority runtime starts")
    })
    .handle()
}

#[cfg(unix)]
fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy};
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        if let Err(e) = thread_priority::set_thread_priority_and_policy(
            thread_priority::thread_native_id(),
            ThreadPriority::Min,
            idle,
        ) {
            tracing::warn!(error = ?e, "cannot schedule a guest thread as idle; lowering its nice value only");
        }
    }
    // On Linux a nice value belongs to a thread, and "process 0" is the
    // calling thread: the other threads of the host are left as they are.
    // Lowering one's own priority needs no privilege.
    if let Err(e) = rustix::process::setpriority_process(None, LOW_NICE) {
        tracing::warn!(error = %e, "cannot lower a guest thread's priority");
    }
}

#[cfg(not(unix))]
fn lower_this_threads_priority() {}

/// Pools like `pools`, for the low-priority runtime: the same connection
/// settings and limits, their connections opened on demand from there.
pub fn low_priority_pools(pools: &BTreeMap<String, PgPool>) -> BTreeMap<String, PgPool> {
    // A pool's upkeep (closing idle connections) runs where it is made.
    let _runtime = low_priority().enter();
    pools
        .iter()
        .map(|(name, pool)| {
            let options = pool.options().clone().min_connections(0);
            (name.clone(), options.connect_lazy_with((*pool.connect_options()).clone()))
        })
        .collect()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn low_priority_threads_are_idle_class_at_nice_19_and_leave_the_callers_alone() {
        use thread_priority::{NormalThreadSchedulePolicy, ThreadSchedulePolicy};
        let own = rustix::process::getpriority_process(None).unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        low_priority().spawn(async move {
            let name = std::thread::current().name().map(str::to_owned);
            let nice = rustix::process::getpriority_process(None).unwrap();
            sender.send((name, nice, thread_priority::thread_schedule_policy().unwrap())).unwrap();
        });
        assert_eq!(
            receiver.recv().unwrap(),
            (
                Some(LOW_THREAD_NAME.to_owned()),
                LOW_NICE,
                ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle)
            )
        );
        assert_eq!(rustix::process::getpriority_process(None).unwrap(), own, "the calling thread keeps its priority");
    }
}
