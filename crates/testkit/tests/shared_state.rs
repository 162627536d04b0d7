//! The shared-state contract: ephemeral values are taken exactly once and expire; locks exclude, expire and
//! are released only by their holder. Runs on the in-process backend and, when `DASHTAM_TEST_REDIS_URL` is
//! set, on Redis.

use std::sync::Arc;
use std::time::Duration;

use dashtam_adapters::{MemorySharedState, RedisSharedState};
use dashtam_domain::ports::{LockToken, SharedState};

fn backends() -> Vec<Arc<dyn SharedState>> {
    let mut backends: Vec<Arc<dyn SharedState>> = vec![Arc::new(MemorySharedState::default())];
    if let Some(url) = dashtam_testkit::redis_url() {
        backends.push(Arc::new(RedisSharedState::new(&url, Duration::from_secs(2)).expect("Redis URL")));
    }
    backends
}

fn unique(name: &str) -> String {
    format!("test:{name}:{}", uuid::Uuid::now_v7().simple())
}

#[tokio::test]
async fn an_ephemeral_value_is_taken_once_by_one_of_many_and_expires() {
    for state in backends() {
        let key = unique("flow");
        assert!(state.put_ephemeral(&key, b"flow", Duration::from_secs(60)).await.expect("put"));
        assert!(!state.put_ephemeral(&key, b"other", Duration::from_secs(60)).await.expect("put"), "taken keys stay");
        let takers = (0..10).map(|_| state.take_ephemeral(&key));
        let taken: Vec<Option<Vec<u8>>> =
            futures::future::join_all(takers).await.into_iter().map(|taken| taken.expect("take")).collect();
        assert_eq!(taken.iter().flatten().collect::<Vec<_>>(), [&b"flow".to_vec()], "{}", state.kind());

        let short = unique("short");
        assert!(state.put_ephemeral(&short, b"x", Duration::from_millis(50)).await.expect("put"));
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(state.take_ephemeral(&short).await.expect("take"), None, "{}", state.kind());
    }
}

#[tokio::test]
async fn locks_exclude_wait_expire_and_are_released_only_by_their_holder() {
    for state in backends() {
        let name = unique("lock");
        let held = state.lock(&name, Duration::from_secs(30), Duration::ZERO).await.expect("lock").expect("free");
        assert_eq!(state.lock(&name, Duration::from_secs(30), Duration::ZERO).await.expect("lock"), None);
        // Someone else's token does not release it.
        state.unlock(&name, &LockToken("not-the-holder".to_owned())).await.expect("unlock");
        assert_eq!(state.lock(&name, Duration::from_secs(30), Duration::from_millis(60)).await.expect("lock"), None);
        // A waiter gets it once the holder lets go.
        let waiter = {
            let (state, name) = (state.clone(), name.clone());
            tokio::spawn(async move { state.lock(&name, Duration::from_secs(30), Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        state.unlock(&name, &held).await.expect("unlock");
        let second = waiter.await.expect("join").expect("lock").expect("acquired after release");
        assert_ne!(second, held);
        // A holder that never releases loses the lock when it expires.
        let expiring = unique("expiring");
        state.lock(&expiring, Duration::from_millis(50), Duration::ZERO).await.expect("lock").expect("free");
        let after = state.lock(&expiring, Duration::from_secs(30), Duration::from_secs(2)).await.expect("lock");
        assert!(after.is_some(), "{}: an expired lock is free", state.kind());
    }
}
