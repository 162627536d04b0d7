//! The store contract: the single source of truth for persistence behaviour. Every test runs unchanged
//! against SQLite and, when `DASHTAM_TEST_DATABASE_URL` is set, PostgreSQL. A new repository method gets
//! its test here first.

use std::sync::Arc;

use dashtam_domain::ports::{Store, StoreBackend, StoreError};
use dashtam_domain::{
    Clock, Email, NewSession, NewUser, OneTimePurpose, OneTimeToken, Role, SessionEndReason, SessionId, SystemClock,
    TokenDigest, User, UserId, UserName,
};
use dashtam_store::MigrationState;
use dashtam_testkit::{Backend, SQLITE_FIXED_WIDTH_INSTANT, TestDatabase, sqlite_trimmed_instant};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// Runs `check` on a freshly migrated store of every configured backend.
async fn on_every_backend<F, Fut>(check: F)
where
    F: Fn(Arc<dyn Store>, Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    for database in TestDatabase::every_backend().await {
        let opened = database.open().await;
        check(opened.store(), database.backend).await;
        opened.store().close().await;
    }
}

fn new_user(email: &str) -> NewUser {
    NewUser {
        id: UserId::generate(),
        email: Email::parse(email).expect("valid email"),
        name: UserName::parse("Ada Lovelace").expect("valid name"),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        role: Role::User,
        email_verified_at: None,
        // Microsecond precision is what both databases keep; the value must come back identical.
        created_at: datetime!(2025-10-03 10:00:00.123456 UTC),
    }
}

async fn insert(store: &Arc<dyn Store>, user: &NewUser) -> Result<dashtam_domain::User, StoreError> {
    let mut tx = store.begin().await?;
    let created = tx.insert_user(user).await?;
    tx.commit().await?;
    Ok(created)
}

#[tokio::test]
async fn reports_its_backend_and_answers_pings() {
    on_every_backend(|store, backend| async move {
        let expected = match backend {
            Backend::Sqlite => StoreBackend::Sqlite,
            Backend::Postgres => StoreBackend::Postgres,
        };
        assert_eq!(store.backend(), expected);
        store.ping().await.expect("ping");
        let stats = store.pool_stats();
        assert!(stats.max >= stats.open && stats.open >= stats.idle, "{stats:?}");
        assert!(stats.open >= 1, "a connection was opened to migrate: {stats:?}");
    })
    .await;
}

#[tokio::test]
async fn inserted_users_read_back_identically_by_id_and_email() {
    on_every_backend(|store, _| async move {
        let mut user = new_user("Ada@Example.com");
        user.email_verified_at = Some(datetime!(2025-10-03 11:00:00.5 UTC));
        let created = insert(&store, &user).await.expect("insert");
        assert_eq!(created.id, user.id);
        assert_eq!(created.email.as_str(), "ada@example.com");
        assert_eq!(created.name, user.name);
        assert_eq!(created.password_hash, user.password_hash);
        assert_eq!(created.role, Role::User);
        assert_eq!(created.email_verified_at, user.email_verified_at);
        assert_eq!((created.created_at, created.updated_at), (user.created_at, user.created_at));
        assert_eq!(created.token_version, 1);
        assert_eq!(created.failed_login_count, 0);
        assert_eq!((created.disabled_at, created.locked_until, created.last_login_at), (None, None, None));

        let by_id = store.user_by_id(user.id).await.expect("read by id");
        assert_eq!(by_id.as_ref(), Some(&created));
        let by_email = store.user_by_email(&Email::parse(" ADA@example.COM").expect("valid")).await.expect("read");
        assert_eq!(by_email.as_ref(), Some(&created));
    })
    .await;
}

#[tokio::test]
async fn timestamps_come_back_in_utc() {
    on_every_backend(|store, _| async move {
        let mut user = new_user("tz@example.com");
        user.created_at = datetime!(2025-10-03 12:00:00 +02:00);
        let created = insert(&store, &user).await.expect("insert");
        assert_eq!(created.created_at, datetime!(2025-10-03 10:00:00 UTC));
        assert!(created.created_at.offset().is_utc());
    })
    .await;
}

#[tokio::test]
async fn missing_users_are_none() {
    on_every_backend(|store, _| async move {
        assert!(store.user_by_id(UserId::generate()).await.expect("query").is_none());
        let nobody = Email::parse("nobody@example.com").expect("valid");
        assert!(store.user_by_email(&nobody).await.expect("query").is_none());
    })
    .await;
}

#[tokio::test]
async fn a_taken_email_is_a_conflict_and_changes_nothing() {
    on_every_backend(|store, _| async move {
        let first = insert(&store, &new_user("twin@example.com")).await.expect("first insert");
        let mut second = new_user("TWIN@example.com");
        second.name = UserName::parse("Impostor").expect("valid");
        let error = insert(&store, &second).await.expect_err("duplicate email");
        assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
        assert!(store.user_by_id(second.id).await.expect("query").is_none());
        let email = Email::parse("twin@example.com").expect("valid");
        assert_eq!(store.user_by_email(&email).await.expect("query"), Some(first));
    })
    .await;
}

#[tokio::test]
async fn an_uncommitted_transaction_leaves_no_trace() {
    on_every_backend(|store, _| async move {
        let user = new_user("ghost@example.com");
        {
            let mut tx = store.begin().await.expect("begin");
            tx.insert_user(&user).await.expect("insert");
            // Dropped without commit.
        }
        assert!(store.user_by_id(user.id).await.expect("query").is_none());
        // The connection went back to the pool in a usable state.
        insert(&store, &user).await.expect("insert after rollback");
    })
    .await;
}

#[tokio::test]
async fn update_user_name_changes_name_and_updated_at_only() {
    on_every_backend(|store, _| async move {
        let created = insert(&store, &new_user("rename@example.com")).await.expect("insert");
        let later = datetime!(2025-10-04 08:30:00 UTC);
        let name = UserName::parse("Countess of Lovelace").expect("valid");
        let mut tx = store.begin().await.expect("begin");
        let updated = tx.update_user_name(created.id, &name, later).await.expect("update").expect("exists");
        tx.commit().await.expect("commit");
        assert_eq!(updated.name, name);
        assert_eq!(updated.updated_at, later);
        assert_eq!(updated.created_at, created.created_at);
        assert_eq!(store.user_by_id(created.id).await.expect("read"), Some(updated));

        let mut tx = store.begin().await.expect("begin");
        assert!(tx.update_user_name(UserId::generate(), &name, later).await.expect("update").is_none());
    })
    .await;
}

#[tokio::test]
async fn set_user_role_promotes_and_demotes() {
    on_every_backend(|store, _| async move {
        let created = insert(&store, &new_user("admin@example.com")).await.expect("insert");
        let now = SystemClock.now();
        for role in [Role::Admin, Role::User] {
            let mut tx = store.begin().await.expect("begin");
            let updated = tx.set_user_role(created.id, role, now).await.expect("update").expect("exists");
            tx.commit().await.expect("commit");
            assert_eq!(updated.role, role);
            assert_eq!(store.user_by_id(created.id).await.expect("read").map(|user| user.role), Some(role));
        }
        let mut tx = store.begin().await.expect("begin");
        assert!(tx.set_user_role(UserId::generate(), Role::Admin, now).await.expect("update").is_none());
    })
    .await;
}

#[tokio::test]
async fn security_config_starts_at_version_one_with_no_rotation() {
    on_every_backend(|store, _| async move {
        let config = store.security_config().await.expect("read");
        assert_eq!(config.global_min_token_version, 1);
        assert_eq!((config.last_rotation_at, config.last_rotation_reason, config.last_rotated_by), (None, None, None));
    })
    .await;
}

#[tokio::test]
async fn concurrent_writers_all_commit() {
    on_every_backend(|store, _| async move {
        let writers = (0..16).map(|n| {
            let store = store.clone();
            tokio::spawn(async move { insert(&store, &new_user(&format!("writer{n}@example.com"))).await })
        });
        for writer in futures::future::join_all(writers).await {
            writer.expect("task").expect("insert");
        }
        for n in 0..16 {
            let email = Email::parse(&format!("writer{n}@example.com")).expect("valid");
            assert!(store.user_by_email(&email).await.expect("read").is_some());
        }
    })
    .await;
}

#[tokio::test]
async fn a_closed_store_is_unavailable() {
    on_every_backend(|store, _| async move {
        store.close().await;
        assert!(matches!(store.ping().await, Err(StoreError::Unavailable(_))));
        assert!(matches!(store.user_by_id(UserId::generate()).await, Err(StoreError::Unavailable(_))));
        assert!(matches!(store.begin().await.map(drop), Err(StoreError::Unavailable(_))));
    })
    .await;
}

#[tokio::test]
async fn migrations_round_trip_down_and_up() {
    for database in TestDatabase::every_backend().await {
        let opened = database.open().await;
        let status = opened.migration_status().await.expect("status");
        assert!(!status.is_empty());
        assert!(status.iter().all(|line| line.state == MigrationState::Applied), "{status:?}");

        let newest = status.last().map(|line| line.version).expect("a migration");
        assert_eq!(opened.migrate_down(1).await.expect("down"), vec![newest]);
        let after_down = opened.migration_status().await.expect("status");
        assert_eq!(after_down.last().map(|line| line.state), Some(MigrationState::Pending));
        assert!(opened.migrate_down(0).await.expect("down zero").is_empty());

        // Everything down, then everything up again: a clean schema that works.
        let all = status.len();
        opened.migrate_up().await.expect("up");
        assert_eq!(opened.migrate_down(all + 5).await.expect("down all").len(), all);
        assert!(opened.migrate_down(1).await.expect("nothing left").is_empty());
        assert_eq!(opened.migrate_up().await.expect("up").len(), all);
        let store = opened.store();
        insert(&store, &new_user("after@example.com")).await.expect("schema usable after round trip");
        assert!(opened.migrate_up().await.expect("up again").is_empty(), "up is idempotent");
        store.close().await;
    }
}

const LOGIN_AT: OffsetDateTime = datetime!(2025-10-03 10:00:00 UTC);

async fn user_with_session(store: &Arc<dyn Store>, email: &str) -> (User, SessionId) {
    let user = insert(store, &new_user(email)).await.expect("insert user");
    let session = NewSession {
        id: SessionId::generate(),
        user_id: user.id,
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0".into()),
        ip_address: Some("203.0.113.7".into()),
        device: dashtam_domain::device::Device::default(),
        global_token_version: 1,
        created_at: LOGIN_AT,
        expires_at: LOGIN_AT + Duration::days(30),
    };
    let mut tx = store.begin().await.expect("begin");
    tx.insert_session(&session).await.expect("insert session");
    tx.commit().await.expect("commit");
    (user, session.id)
}

fn digest(byte: u8) -> TokenDigest {
    TokenDigest([byte; 32])
}

#[tokio::test]
async fn sessions_start_live_and_end_once() {
    on_every_backend(|store, _| async move {
        let (user, session_id) = user_with_session(&store, "session@example.com").await;
        let session = store.session_by_id(session_id).await.expect("read").expect("exists");
        assert_eq!(session.user_id, user.id);
        assert_eq!(session.user_agent.as_deref(), Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0"));
        assert_eq!(session.ip_address.as_deref(), Some("203.0.113.7"));
        assert_eq!((session.created_at, session.last_activity_at), (LOGIN_AT, LOGIN_AT));
        assert_eq!(session.expires_at, LOGIN_AT + Duration::days(30));
        assert!(session.is_live(LOGIN_AT));

        let later = LOGIN_AT + Duration::minutes(5);
        let mut tx = store.begin().await.expect("begin");
        assert!(tx.end_session(session_id, SessionEndReason::Logout, later).await.expect("end"));
        assert!(!tx.end_session(session_id, SessionEndReason::Revoked, later).await.expect("end again"));
        tx.commit().await.expect("commit");
        let ended = store.session_by_id(session_id).await.expect("read").expect("exists");
        assert_eq!((ended.revoked_at, ended.revoked_reason), (Some(later), Some(SessionEndReason::Logout)));
        assert!(!ended.is_live(later));

        let mut tx = store.begin().await.expect("begin");
        assert!(!tx.end_session(SessionId::generate(), SessionEndReason::Logout, later).await.expect("end"));
        assert!(store.session_by_id(SessionId::generate()).await.expect("read").is_none());
    })
    .await;
}

#[tokio::test]
async fn sessions_need_an_existing_user() {
    on_every_backend(|store, _| async move {
        let orphan = NewSession {
            id: SessionId::generate(),
            user_id: UserId::generate(),
            user_agent: None,
            ip_address: None,
            device: dashtam_domain::device::Device::default(),
            global_token_version: 1,
            created_at: LOGIN_AT,
            expires_at: LOGIN_AT + Duration::days(30),
        };
        let mut tx = store.begin().await.expect("begin");
        assert!(tx.insert_session(&orphan).await.is_err(), "foreign key enforced");
    })
    .await;
}

#[tokio::test]
async fn refresh_tokens_rotate_exactly_once_into_their_successor() {
    on_every_backend(|store, _| async move {
        let (_, session_id) = user_with_session(&store, "refresh@example.com").await;
        let (first_id, second_id) = (Uuid::now_v7(), Uuid::now_v7());
        let mut tx = store.begin().await.expect("begin");
        let first = tx.insert_refresh_token(first_id, session_id, &digest(1), LOGIN_AT).await.expect("insert");
        tx.commit().await.expect("commit");
        assert_eq!(
            (first.id, first.session_id, first.rotated_at, first.replaced_by),
            (first_id, session_id, None, None)
        );
        let read = store.refresh_token_by_digest(&digest(1)).await.expect("read").expect("exists");
        assert_eq!(read.token, first);
        assert_eq!(Some(read.session), store.session_auth_state(session_id).await.expect("read"));

        let later = LOGIN_AT + Duration::minutes(10);
        let mut tx = store.begin().await.expect("begin");
        assert!(tx.rotate_refresh_token(first_id, second_id, session_id, &digest(2), later).await.expect("rotate"));
        let again = tx.rotate_refresh_token(first_id, Uuid::now_v7(), session_id, &digest(3), later).await;
        assert!(!again.expect("rotate"), "a token rotates once");
        tx.commit().await.expect("commit");

        let rotated = store.refresh_token_by_digest(&digest(1)).await.expect("read").expect("exists").token;
        assert_eq!((rotated.rotated_at, rotated.replaced_by), (Some(later), Some(second_id)));
        let successor = store.refresh_token_by_digest(&digest(2)).await.expect("read").expect("exists").token;
        assert_eq!(
            (successor.id, successor.session_id, successor.created_at, successor.rotated_at),
            (second_id, session_id, later, None)
        );
        assert!(store.refresh_token_by_digest(&digest(3)).await.expect("read").is_none(), "the loser wrote nothing");

        let mut tx = store.begin().await.expect("begin");
        let unknown = tx.rotate_refresh_token(Uuid::now_v7(), Uuid::now_v7(), session_id, &digest(4), later).await;
        assert!(!unknown.expect("rotate"), "no such token");
        tx.commit().await.expect("commit");
        assert!(store.refresh_token_by_digest(&digest(4)).await.expect("read").is_none(), "no successor written");
    })
    .await;
}

#[tokio::test]
async fn a_session_has_one_current_refresh_token_and_digests_are_unique() {
    on_every_backend(|store, _| async move {
        let (_, session_id) = user_with_session(&store, "current@example.com").await;
        let mut tx = store.begin().await.expect("begin");
        tx.insert_refresh_token(Uuid::now_v7(), session_id, &digest(7), LOGIN_AT).await.expect("insert");
        tx.commit().await.expect("commit");

        let mut tx = store.begin().await.expect("begin");
        let second = tx.insert_refresh_token(Uuid::now_v7(), session_id, &digest(8), LOGIN_AT).await;
        assert!(matches!(second, Err(StoreError::Conflict(_))), "two current tokens: {second:?}");
        drop(tx);

        let (_, other_session) = user_with_session(&store, "other@example.com").await;
        let mut tx = store.begin().await.expect("begin");
        let duplicate = tx.insert_refresh_token(Uuid::now_v7(), other_session, &digest(7), LOGIN_AT).await;
        assert!(matches!(duplicate, Err(StoreError::Conflict(_))), "digest reused: {duplicate:?}");
    })
    .await;
}

#[tokio::test]
async fn concurrent_rotations_of_one_token_have_a_single_winner() {
    on_every_backend(|store, _| async move {
        let (_, session_id) = user_with_session(&store, "race@example.com").await;
        let token_id = Uuid::now_v7();
        let mut tx = store.begin().await.expect("begin");
        tx.insert_refresh_token(token_id, session_id, &digest(9), LOGIN_AT).await.expect("insert");
        tx.commit().await.expect("commit");

        let attempts = (0..8).map(|attempt| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut tx = store.begin().await?;
                let successor = digest(100 + attempt);
                let later = LOGIN_AT + Duration::minutes(1);
                let won = tx.rotate_refresh_token(token_id, Uuid::now_v7(), session_id, &successor, later).await?;
                tx.commit().await?;
                Ok::<bool, StoreError>(won)
            })
        });
        let winners = futures::future::join_all(attempts)
            .await
            .into_iter()
            .map(|joined| joined.expect("task").expect("rotation ran"))
            .filter(|won| *won)
            .count();
        assert_eq!(winners, 1);
        let mut successors = 0;
        for attempt in 0..8 {
            successors +=
                usize::from(store.refresh_token_by_digest(&digest(100 + attempt)).await.expect("read").is_some());
        }
        assert_eq!(successors, 1, "only the winner's successor was written");
    })
    .await;
}

fn one_time(user_id: UserId, purpose: OneTimePurpose, issued_at: OffsetDateTime, lifetime: Duration) -> OneTimeToken {
    OneTimeToken {
        id: Uuid::now_v7(),
        user_id,
        purpose,
        created_at: issued_at,
        expires_at: issued_at + lifetime,
        used_at: None,
    }
}

#[tokio::test]
async fn one_time_tokens_are_single_use_purpose_bound_and_expire() {
    on_every_backend(|store, _| async move {
        let user = insert(&store, &new_user("once@example.com")).await.expect("insert");
        let token = one_time(user.id, OneTimePurpose::ResetPassword, LOGIN_AT, Duration::minutes(15));
        let mut tx = store.begin().await.expect("begin");
        tx.insert_one_time_token(&token, &digest(20)).await.expect("insert");
        tx.commit().await.expect("commit");

        let mut tx = store.begin().await.expect("begin");
        let wrong_purpose = tx.consume_one_time_token(&digest(20), OneTimePurpose::VerifyEmail, LOGIN_AT).await;
        assert!(wrong_purpose.expect("query").is_none());
        let used_at = LOGIN_AT + Duration::minutes(1);
        let used = tx.consume_one_time_token(&digest(20), OneTimePurpose::ResetPassword, used_at).await;
        let used = used.expect("query").expect("first use succeeds");
        assert_eq!((used.id, used.user_id, used.used_at), (token.id, user.id, Some(used_at)));
        let again = tx.consume_one_time_token(&digest(20), OneTimePurpose::ResetPassword, used_at).await;
        assert!(again.expect("query").is_none(), "single use");
        tx.commit().await.expect("commit");

        let expiring = one_time(user.id, OneTimePurpose::VerifyEmail, LOGIN_AT, Duration::hours(24));
        let mut tx = store.begin().await.expect("begin");
        tx.insert_one_time_token(&expiring, &digest(21)).await.expect("insert");
        let at_expiry = LOGIN_AT + Duration::hours(24);
        let expired = tx.consume_one_time_token(&digest(21), OneTimePurpose::VerifyEmail, at_expiry).await;
        assert!(expired.expect("query").is_none(), "expired at expires_at");
        let just_before = at_expiry - Duration::seconds(1);
        let in_time = tx.consume_one_time_token(&digest(21), OneTimePurpose::VerifyEmail, just_before).await;
        assert!(in_time.expect("query").is_some());
    })
    .await;
}

/// Instants compare in time order in SQL even within one second, where text with the fraction's trailing zeros
/// trimmed would not: `…:10.85Z` sorts after `…:10.857795Z`, and `…:11Z` after `…:11.5Z`.
#[tokio::test]
async fn stored_instants_compare_in_time_order_within_a_second() {
    on_every_backend(|store, _| async move {
        let user = insert(&store, &new_user("instants@example.com")).await.expect("insert");
        let cases = [
            // (expires at, checked at, still valid)
            (datetime!(2025-10-03 10:00:10.85 UTC), datetime!(2025-10-03 10:00:10.857795 UTC), false),
            (datetime!(2025-10-03 10:00:11 UTC), datetime!(2025-10-03 10:00:11.5 UTC), false),
            (datetime!(2025-10-03 10:00:12.857795 UTC), datetime!(2025-10-03 10:00:12.85 UTC), true),
            (datetime!(2025-10-03 10:00:13.5 UTC), datetime!(2025-10-03 10:00:13 UTC), true),
        ];
        for (index, (expires_at, checked_at, valid)) in cases.into_iter().enumerate() {
            let token = one_time(user.id, OneTimePurpose::ResetPassword, LOGIN_AT, expires_at - LOGIN_AT);
            let token_digest = digest(60 + index as u8);
            let mut tx = store.begin().await.expect("begin");
            tx.insert_one_time_token(&token, &token_digest).await.expect("insert");
            let used = tx.consume_one_time_token(&token_digest, OneTimePurpose::ResetPassword, checked_at).await;
            assert_eq!(used.expect("query").is_some(), valid, "expiring at {expires_at}, used at {checked_at}");
            tx.commit().await.expect("commit");
        }
    })
    .await;
}

/// Migration 000017 on SQLite rewrites instants stored the old way (fraction trimmed) with nine fractional
/// digits, and the store reads the same instants back.
#[tokio::test]
async fn the_fixed_width_migration_rewrites_old_instants_as_the_same_instants() {
    const FIXED_WIDTH_INSTANTS: dashtam_store::SchemaVersion = 20261130000017;
    let database = TestDatabase::sqlite();
    let opened = database.open().await;
    let store = opened.store();
    let (user, session_id) = user_with_session(&store, "old-times@example.com").await;
    let mut tx = store.begin().await.expect("begin");
    let ended_at = datetime!(2025-10-04 08:30:00.25 UTC);
    assert!(tx.end_session(session_id, SessionEndReason::Logout, ended_at).await.expect("end"));
    tx.commit().await.expect("commit");
    let before = (store.user_by_id(user.id).await.expect("read"), store.session_by_id(session_id).await.expect("read"));

    let status = opened.migration_status().await.expect("status");
    let steps = status.iter().filter(|line| line.version >= FIXED_WIDTH_INSTANTS).count();
    assert!(steps >= 1, "the rewrite is among the applied migrations: {status:?}");
    assert_eq!(opened.migrate_down(steps).await.expect("down").len(), steps);
    // As sqlx wrote them before: `…:00.123456Z`, `…:00Z`, `…:00.25Z`.
    let trim_sessions =
        ["created_at", "last_activity_at", "expires_at", "revoked_at"].map(sqlite_trimmed_instant).join(", ");
    database
        .execute_raw_sql(&format!(
            "UPDATE users SET {}; UPDATE sessions SET {trim_sessions}",
            sqlite_trimmed_instant("created_at")
        ))
        .await
        .expect("write instants the old way");
    let trimmed = |table: &str, column: &str| {
        format!("SELECT count(*) FROM {table} WHERE {column} NOT GLOB {SQLITE_FIXED_WIDTH_INSTANT}")
    };
    assert_eq!(database.fetch_i64(&trimmed("sessions", "revoked_at")).await.expect("count"), 1, "trimmed");
    assert_eq!(database.fetch_i64(&trimmed("users", "created_at")).await.expect("count"), 1, "trimmed");

    assert_eq!(opened.migrate_up().await.expect("up").len(), steps);
    let rewritten = [
        ("users", "created_at"),
        ("users", "updated_at"),
        ("sessions", "created_at"),
        ("sessions", "last_activity_at"),
        ("sessions", "expires_at"),
        ("sessions", "revoked_at"),
    ];
    for (table, column) in rewritten {
        assert_eq!(database.fetch_i64(&trimmed(table, column)).await.expect("count"), 0, "{table}.{column} rewritten");
    }
    let after = (store.user_by_id(user.id).await.expect("read"), store.session_by_id(session_id).await.expect("read"));
    assert_eq!(after, before, "the same instants");
    store.close().await;
}

#[tokio::test]
async fn a_new_one_time_token_voids_older_ones_of_the_same_purpose_only() {
    on_every_backend(|store, _| async move {
        let user = insert(&store, &new_user("newer@example.com")).await.expect("insert");
        let mut tx = store.begin().await.expect("begin");
        let older = one_time(user.id, OneTimePurpose::ResetPassword, LOGIN_AT, Duration::minutes(15));
        tx.insert_one_time_token(&older, &digest(30)).await.expect("insert");
        let verify = one_time(user.id, OneTimePurpose::VerifyEmail, LOGIN_AT, Duration::hours(24));
        tx.insert_one_time_token(&verify, &digest(31)).await.expect("insert");
        let newer_at = LOGIN_AT + Duration::minutes(2);
        let newer = one_time(user.id, OneTimePurpose::ResetPassword, newer_at, Duration::minutes(15));
        tx.insert_one_time_token(&newer, &digest(32)).await.expect("insert");
        tx.commit().await.expect("commit");

        let now = LOGIN_AT + Duration::minutes(3);
        let mut tx = store.begin().await.expect("begin");
        assert!(tx.consume_one_time_token(&digest(30), OneTimePurpose::ResetPassword, now).await.expect("q").is_none());
        assert!(tx.consume_one_time_token(&digest(32), OneTimePurpose::ResetPassword, now).await.expect("q").is_some());
        assert!(tx.consume_one_time_token(&digest(31), OneTimePurpose::VerifyEmail, now).await.expect("q").is_some());
    })
    .await;
}

#[tokio::test]
async fn login_failures_count_up_and_lock_at_the_threshold() {
    on_every_backend(|store, _| async move {
        let user = insert(&store, &new_user("lock@example.com")).await.expect("insert");
        let lock_until = LOGIN_AT + Duration::hours(1);
        for attempt in 1..=3 {
            let mut tx = store.begin().await.expect("begin");
            let updated =
                tx.record_login_failure(user.id, 3, lock_until, LOGIN_AT).await.expect("record").expect("user");
            tx.commit().await.expect("commit");
            assert_eq!(updated.failed_login_count, attempt);
            let expected_lock = (attempt >= 3).then_some(lock_until);
            assert_eq!(updated.locked_until, expected_lock, "attempt {attempt}");
        }
        let mut tx = store.begin().await.expect("begin");
        assert!(tx.record_login_failure(UserId::generate(), 3, lock_until, LOGIN_AT).await.expect("record").is_none());
        drop(tx);

        let later = LOGIN_AT + Duration::minutes(5);
        let mut tx = store.begin().await.expect("begin");
        tx.record_login_success(user.id, later).await.expect("success");
        tx.commit().await.expect("commit");
        let reset = store.user_by_id(user.id).await.expect("read").expect("user");
        assert_eq!((reset.failed_login_count, reset.locked_until, reset.last_login_at), (0, None, Some(later)));
    })
    .await;
}

#[tokio::test]
async fn concurrent_login_failures_are_all_counted() {
    on_every_backend(|store, _| async move {
        let user = insert(&store, &new_user("flood@example.com")).await.expect("insert");
        let failures = (0..10).map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut tx = store.begin().await?;
                tx.record_login_failure(user.id, 100, LOGIN_AT, LOGIN_AT).await?;
                tx.commit().await
            })
        });
        for failure in futures::future::join_all(failures).await {
            failure.expect("task").expect("recorded");
        }
        assert_eq!(store.user_by_id(user.id).await.expect("read").map(|user| user.failed_login_count), Some(10));
    })
    .await;
}

#[tokio::test]
async fn a_new_password_replaces_the_hash_and_lifts_the_lock() {
    on_every_backend(|store, _| async move {
        let user = insert(&store, &new_user("newpass@example.com")).await.expect("insert");
        let mut tx = store.begin().await.expect("begin");
        tx.record_login_failure(user.id, 1, LOGIN_AT + Duration::hours(1), LOGIN_AT).await.expect("lock");
        assert!(tx.set_password_hash(user.id, "$argon2id$new", LOGIN_AT).await.expect("set"));
        assert!(!tx.set_password_hash(UserId::generate(), "$argon2id$new", LOGIN_AT).await.expect("set"));
        tx.commit().await.expect("commit");
        let updated = store.user_by_id(user.id).await.expect("read").expect("user");
        assert_eq!(updated.password_hash, "$argon2id$new");
        assert_eq!((updated.failed_login_count, updated.locked_until), (0, None));
    })
    .await;
}

#[tokio::test]
async fn verification_and_disabling_keep_their_first_time() {
    on_every_backend(|store, _| async move {
        let user = insert(&store, &new_user("verify@example.com")).await.expect("insert");
        let later = LOGIN_AT + Duration::hours(2);
        let mut tx = store.begin().await.expect("begin");
        assert!(tx.mark_email_verified(user.id, LOGIN_AT).await.expect("verify"));
        assert!(tx.mark_email_verified(user.id, later).await.expect("verify again"));
        assert!(!tx.mark_email_verified(UserId::generate(), LOGIN_AT).await.expect("verify"));
        let disabled = tx.disable_user(user.id, LOGIN_AT).await.expect("disable").expect("user");
        assert_eq!(disabled.disabled_at, Some(LOGIN_AT));
        let again = tx.disable_user(user.id, later).await.expect("disable").expect("user");
        assert_eq!(again.disabled_at, Some(LOGIN_AT));
        assert!(tx.disable_user(UserId::generate(), LOGIN_AT).await.expect("disable").is_none());
        tx.commit().await.expect("commit");
        let stored = store.user_by_id(user.id).await.expect("read").expect("user");
        assert_eq!((stored.email_verified_at, stored.disabled_at), (Some(LOGIN_AT), Some(LOGIN_AT)));
    })
    .await;
}

#[tokio::test]
async fn ending_a_users_sessions_can_keep_one_and_counts_the_rest() {
    on_every_backend(|store, _| async move {
        let (user, first) = user_with_session(&store, "many@example.com").await;
        let mut ids = vec![first];
        for _ in 0..2 {
            let session = NewSession {
                id: SessionId::generate(),
                user_id: user.id,
                user_agent: None,
                ip_address: None,
                device: dashtam_domain::device::Device::default(),
                global_token_version: 1,
                created_at: LOGIN_AT,
                expires_at: LOGIN_AT + Duration::days(30),
            };
            let mut tx = store.begin().await.expect("begin");
            tx.insert_session(&session).await.expect("insert");
            tx.commit().await.expect("commit");
            ids.push(session.id);
        }
        let (_, stranger) = user_with_session(&store, "stranger@example.com").await;
        let now = LOGIN_AT + Duration::minutes(1);

        let mut tx = store.begin().await.expect("begin");
        let ended = tx.end_user_sessions(user.id, Some(ids[0]), SessionEndReason::PasswordChanged, now).await;
        assert_eq!(ended.expect("end"), 2);
        tx.commit().await.expect("commit");
        assert!(store.session_by_id(ids[0]).await.expect("read").expect("session").is_live(now));
        for id in &ids[1..] {
            let session = store.session_by_id(*id).await.expect("read").expect("session");
            assert_eq!(session.revoked_reason, Some(SessionEndReason::PasswordChanged));
        }
        assert!(store.session_by_id(stranger).await.expect("read").expect("session").is_live(now), "others untouched");

        let mut tx = store.begin().await.expect("begin");
        assert_eq!(tx.end_user_sessions(user.id, None, SessionEndReason::TokenRotation, now).await.expect("end"), 1);
        assert_eq!(tx.end_user_sessions(user.id, None, SessionEndReason::TokenRotation, now).await.expect("end"), 0);
    })
    .await;
}

#[tokio::test]
async fn session_auth_state_joins_session_user_and_global_version() {
    on_every_backend(|store, _| async move {
        let (user, session_id) = user_with_session(&store, "state@example.com").await;
        let state = store.session_auth_state(session_id).await.expect("read").expect("state");
        assert_eq!((state.session_id, &state.user), (session_id, &user));
        assert_eq!(state.session_revoked_at, None);
        assert_eq!(state.session_expires_at, LOGIN_AT + Duration::days(30));
        assert_eq!(state.session_last_activity_at, LOGIN_AT);
        assert_eq!((state.user.token_version, state.global_min_token_version), (1, 1));

        let mut tx = store.begin().await.expect("begin");
        tx.end_session(session_id, SessionEndReason::Logout, LOGIN_AT).await.expect("end");
        tx.disable_user(user.id, LOGIN_AT).await.expect("disable");
        tx.commit().await.expect("commit");
        let state = store.session_auth_state(session_id).await.expect("read").expect("state");
        assert_eq!((state.session_revoked_at, state.user.disabled_at), (Some(LOGIN_AT), Some(LOGIN_AT)));
        assert!(store.session_auth_state(SessionId::generate()).await.expect("read").is_none());
    })
    .await;
}

#[tokio::test]
async fn touching_a_session_only_moves_activity_forward() {
    on_every_backend(|store, _| async move {
        let (_, session_id) = user_with_session(&store, "touch@example.com").await;
        let later = LOGIN_AT + Duration::minutes(3);
        let mut tx = store.begin().await.expect("begin");
        tx.touch_session(session_id, later).await.expect("touch");
        tx.touch_session(session_id, LOGIN_AT).await.expect("touch earlier");
        tx.commit().await.expect("commit");
        let session = store.session_by_id(session_id).await.expect("read").expect("session");
        assert_eq!(session.last_activity_at, later);
    })
    .await;
}

#[tokio::test]
async fn refresh_tokens_are_found_by_id() {
    on_every_backend(|store, _| async move {
        let (_, session_id) = user_with_session(&store, "byid@example.com").await;
        let id = Uuid::now_v7();
        let mut tx = store.begin().await.expect("begin");
        let inserted = tx.insert_refresh_token(id, session_id, &digest(40), LOGIN_AT).await.expect("insert");
        tx.commit().await.expect("commit");
        assert_eq!(store.refresh_token_by_id(id).await.expect("read"), Some(inserted));
        assert!(store.refresh_token_by_id(Uuid::now_v7()).await.expect("read").is_none());
    })
    .await;
}

fn outgoing(to: &str, created_at: OffsetDateTime) -> dashtam_domain::mail::OutgoingEmail {
    dashtam_domain::mail::OutgoingEmail {
        id: Uuid::now_v7(),
        to: Email::parse(to).expect("valid"),
        subject: "Verify your email".into(),
        text_body: "text".into(),
        html_body: "<p>html</p>".into(),
        created_at,
    }
}

#[tokio::test]
async fn the_outbox_delivers_committed_mail_once_with_leases_and_retries() {
    on_every_backend(|store, _| async move {
        let queued = outgoing("mail@example.com", LOGIN_AT);
        let mut tx = store.begin().await.expect("begin");
        tx.enqueue_email(&queued).await.expect("enqueue");
        tx.commit().await.expect("commit");
        {
            let mut rolled_back = store.begin().await.expect("begin");
            rolled_back.enqueue_email(&outgoing("never@example.com", LOGIN_AT)).await.expect("enqueue");
        }

        let lease = LOGIN_AT + Duration::minutes(2);
        let mut tx = store.begin().await.expect("begin");
        let claimed = tx.claim_due_emails(LOGIN_AT, lease, 10).await.expect("claim");
        assert_eq!(claimed.len(), 1, "only committed mail");
        assert_eq!((&claimed[0].email, claimed[0].attempts), (&queued, 0));
        assert!(tx.claim_due_emails(LOGIN_AT, lease, 10).await.expect("claim").is_empty(), "leased");
        tx.commit().await.expect("commit");

        // The worker failed to send; retry in 30 s.
        let retry_at = LOGIN_AT + Duration::seconds(30);
        let mut tx = store.begin().await.expect("begin");
        tx.mark_email_failed(queued.id, "connection refused", Some(retry_at)).await.expect("failed");
        assert!(tx.claim_due_emails(LOGIN_AT, lease, 10).await.expect("claim").is_empty(), "not due yet");
        let again = tx.claim_due_emails(retry_at, retry_at + Duration::minutes(2), 10).await.expect("claim");
        assert_eq!((again.len(), again[0].attempts), (1, 1));
        tx.mark_email_sent(queued.id, retry_at).await.expect("sent");
        tx.commit().await.expect("commit");

        let far_future = LOGIN_AT + Duration::days(1);
        let mut tx = store.begin().await.expect("begin");
        assert!(tx.claim_due_emails(far_future, far_future, 10).await.expect("claim").is_empty(), "sent once");

        let given_up = outgoing("bounce@example.com", LOGIN_AT);
        tx.enqueue_email(&given_up).await.expect("enqueue");
        tx.mark_email_failed(given_up.id, "mailbox unavailable", None).await.expect("give up");
        assert!(tx.claim_due_emails(far_future, far_future, 10).await.expect("claim").is_empty(), "never retried");
    })
    .await;
}

#[tokio::test]
async fn outbox_claims_respect_the_batch_limit_in_queue_order() {
    on_every_backend(|store, _| async move {
        let mut tx = store.begin().await.expect("begin");
        let emails: Vec<_> =
            (0..5).map(|n| outgoing(&format!("batch{n}@example.com"), LOGIN_AT + Duration::seconds(n))).collect();
        for email in &emails {
            tx.enqueue_email(email).await.expect("enqueue");
        }
        tx.commit().await.expect("commit");
        let now = LOGIN_AT + Duration::minutes(1);
        let mut tx = store.begin().await.expect("begin");
        let first = tx.claim_due_emails(now, now + Duration::minutes(2), 3).await.expect("claim");
        let rest = tx.claim_due_emails(now, now + Duration::minutes(2), 3).await.expect("claim");
        let ids = |batch: &[dashtam_domain::mail::QueuedEmail]| batch.iter().map(|q| q.email.id).collect::<Vec<_>>();
        assert_eq!(ids(&first), emails[..3].iter().map(|e| e.id).collect::<Vec<_>>());
        assert_eq!(ids(&rest), emails[3..].iter().map(|e| e.id).collect::<Vec<_>>());
    })
    .await;
}

#[tokio::test]
async fn rate_limit_violations_are_recorded_in_batches_and_read_newest_first() {
    use dashtam_domain::rate_limit::{RateLimitScope, RateLimitViolation};
    on_every_backend(|store, _| async move {
        let violation = |minute: i64, address: Option<&str>, scope| RateLimitViolation {
            id: Uuid::now_v7(),
            occurred_at: datetime!(2026-11-28 10:00:00.123456 UTC) + Duration::minutes(minute),
            rule: "login-ip".to_owned(),
            route: "POST /api/v1/auth/login".to_owned(),
            scope,
            identifier: address.map_or_else(|| "account:00ff".to_owned(), |address| format!("ip:{address}")),
            ip_address: address.map(|address| address.parse().expect("address")),
        };
        let batch = [
            violation(0, Some("203.0.113.7"), RateLimitScope::Ip),
            violation(2, Some("2001:db8::1"), RateLimitScope::Ip),
            violation(1, None, RateLimitScope::Account),
        ];
        let mut tx = store.begin().await.expect("begin");
        tx.insert_rate_limit_violations(&batch).await.expect("insert");
        tx.commit().await.expect("commit");
        let newest_first = store.recent_rate_limit_violations(10).await.expect("read");
        assert_eq!(newest_first, [batch[1].clone(), batch[2].clone(), batch[0].clone()]);
        assert_eq!(store.recent_rate_limit_violations(1).await.expect("read"), [batch[1].clone()]);
        // A batch is one transaction: dropped uncommitted, none of it is kept.
        let mut tx = store.begin().await.expect("begin");
        tx.insert_rate_limit_violations(&[violation(3, None, RateLimitScope::Global)]).await.expect("insert");
        drop(tx);
        assert_eq!(store.recent_rate_limit_violations(10).await.expect("read").len(), 3);
    })
    .await;
}

mod providers {
    use super::*;
    use dashtam_domain::providers::{
        Alias, CredentialKind, NewProvider, ProviderId, ProviderKey, ProviderListQuery, ProviderSort, ProviderStatus,
        StoredCredentials,
    };

    fn new_provider(user_id: UserId, alias: &str, minute: i64) -> NewProvider {
        NewProvider {
            id: ProviderId::generate(),
            user_id,
            provider_key: ProviderKey::FileImport,
            alias: Alias::parse(alias).expect("alias"),
            created_at: datetime!(2026-11-28 10:00:00.123456 UTC) + Duration::minutes(minute),
        }
    }

    fn query(user_id: UserId) -> ProviderListQuery {
        ProviderListQuery {
            user_id,
            status: None,
            provider_key: None,
            sort: ProviderSort::CreatedAt,
            descending: false,
            offset: 0,
            limit: 50,
        }
    }

    #[tokio::test]
    async fn connections_are_owned_unique_by_alias_paged_and_deleted_with_their_credentials() {
        on_every_backend(|store, _| async move {
            let owner = insert(&store, &new_user("owner@example.com")).await.expect("owner");
            let other = insert(&store, &new_user("other@example.com")).await.expect("other");
            let first = new_provider(owner.id, "Brokerage", 0);
            let mut tx = store.begin().await.expect("begin");
            let created = tx.insert_provider(&first).await.expect("insert");
            tx.insert_provider(&new_provider(owner.id, "Bank", 1)).await.expect("insert");
            tx.insert_provider(&new_provider(owner.id, "Card", 2)).await.expect("insert");
            tx.insert_provider(&new_provider(other.id, "Brokerage", 0)).await.expect("another user's alias");
            tx.commit().await.expect("commit");
            assert_eq!(created.status, ProviderStatus::Pending);
            assert_eq!(created.created_at, first.created_at);
            assert_eq!(created.accounts_count, 0);

            // Aliases are unique per user regardless of case.
            let mut tx = store.begin().await.expect("begin");
            let duplicate = tx.insert_provider(&new_provider(owner.id, "BROKERAGE", 3)).await;
            assert!(matches!(duplicate, Err(StoreError::Conflict(_))), "{duplicate:?}");
            drop(tx);

            // Ownership is part of the read.
            assert_eq!(store.provider(owner.id, first.id).await.expect("read"), Some(created.clone()));
            assert_eq!(store.provider(other.id, first.id).await.expect("read"), None);

            let page = store.providers(&ProviderListQuery { limit: 2, ..query(owner.id) }).await.expect("page");
            assert_eq!(page.total, 3);
            let aliases: Vec<&str> = page.items.iter().map(|provider| provider.alias.as_str()).collect();
            assert_eq!(aliases, ["Brokerage", "Bank"]);
            let page = store
                .providers(&ProviderListQuery { offset: 2, limit: 2, ..query(owner.id) })
                .await
                .expect("second page");
            assert_eq!(page.items.iter().map(|provider| provider.alias.as_str()).collect::<Vec<_>>(), ["Card"]);
            let by_alias = store
                .providers(&ProviderListQuery { sort: ProviderSort::Alias, descending: true, ..query(owner.id) })
                .await
                .expect("sorted");
            let aliases: Vec<&str> = by_alias.items.iter().map(|provider| provider.alias.as_str()).collect();
            assert_eq!(aliases, ["Card", "Brokerage", "Bank"]);

            // Status filter and transitions.
            let now = datetime!(2026-11-28 11:00:00 UTC);
            let credentials = StoredCredentials {
                provider_id: first.id,
                kind: CredentialKind::OAuth2,
                secret: vec![1, 2, 3],
                access_expires_at: Some(now + Duration::minutes(30)),
                has_refresh_token: true,
                scope: Some("api".to_owned()),
                connected_at: now,
                updated_at: now,
            };
            let mut tx = store.begin().await.expect("begin");
            tx.put_credentials(&credentials).await.expect("credentials");
            tx.set_provider_status(first.id, ProviderStatus::Active, true, now).await.expect("status");
            assert_eq!(tx.count_refresh_failure(first.id, now).await.expect("count"), 1);
            assert_eq!(tx.count_refresh_failure(first.id, now).await.expect("count"), 2);
            tx.commit().await.expect("commit");
            let active = store
                .providers(&ProviderListQuery { status: Some(ProviderStatus::Active), ..query(owner.id) })
                .await
                .expect("filtered");
            assert_eq!(active.total, 1);
            assert_eq!(active.items[0].connected_at, Some(now));
            assert_eq!(active.items[0].refresh_failures, 2);
            assert_eq!(store.provider_credentials(first.id).await.expect("read"), Some(credentials.clone()));

            // Replacing a secret is compare-and-swap.
            let mut tx = store.begin().await.expect("begin");
            assert!(!tx.replace_credentials_secret(first.id, &[9], &[4]).await.expect("stale"));
            assert!(tx.replace_credentials_secret(first.id, &[1, 2, 3], &[4, 5]).await.expect("swap"));
            tx.commit().await.expect("commit");
            let listed = store.credentials_after(None, 10).await.expect("list");
            assert_eq!(listed.len(), 1);
            assert_eq!(listed[0].secret, [4, 5]);
            assert!(store.credentials_after(Some(first.id), 10).await.expect("after").is_empty());

            // Another user cannot rename or delete it; its owner deletes it with its credentials.
            let mut tx = store.begin().await.expect("begin");
            let alias = Alias::parse("Mine now").expect("alias");
            assert_eq!(tx.rename_provider(other.id, first.id, &alias, now).await.expect("rename"), None);
            assert!(!tx.delete_provider(other.id, first.id).await.expect("delete"));
            assert!(tx.delete_provider(owner.id, first.id).await.expect("delete"));
            tx.commit().await.expect("commit");
            assert_eq!(store.provider_credentials(first.id).await.expect("read"), None);
            assert_eq!(store.providers(&query(owner.id)).await.expect("list").total, 2);
        })
        .await;
    }
}

mod ledger {
    use super::*;
    use dashtam_domain::finance::{AccountType, AssetType, TransactionStatus, TransactionSubtype, TransactionType};
    use dashtam_domain::ledger::{
        AccountFilter, AccountId, AccountUpsert, BalanceSnapshot, Holding, HoldingFilter, HoldingId, SnapshotSource,
        Transaction, TransactionId, TransactionQuery, Upserted,
    };
    use dashtam_domain::money::Currency;
    use dashtam_domain::providers::{Alias, NewProvider, ProviderId, ProviderKey, ProviderStatus};
    use dashtam_testkit::ledger::{dec, purchase};
    use time::macros::date;

    const NOW: OffsetDateTime = datetime!(2026-11-28 12:00:00 UTC);

    async fn user_with_provider(store: &Arc<dyn Store>, email: &str) -> (UserId, ProviderId) {
        let user = insert(store, &new_user(email)).await.expect("user");
        let provider = NewProvider {
            id: ProviderId::generate(),
            user_id: user.id,
            provider_key: ProviderKey::FileImport,
            alias: Alias::parse("Statements").expect("alias"),
            created_at: NOW,
        };
        let mut tx = store.begin().await.expect("begin");
        tx.insert_provider(&provider).await.expect("provider");
        tx.commit().await.expect("commit");
        (user.id, provider.id)
    }

    fn upsert<'a>(user_id: UserId, provider_id: ProviderId, key: &'a str, balance: &str) -> AccountUpsert<'a> {
        AccountUpsert {
            user_id,
            provider_id,
            provider_account_id: key,
            name: "Checking",
            account_type: AccountType::Checking,
            number_masked: Some("••••1234"),
            currency: Currency::USD,
            balance: dec(balance),
            available_balance: None,
            now: NOW,
        }
    }

    async fn account(store: &Arc<dyn Store>, user_id: UserId, provider_id: ProviderId, key: &str) -> AccountId {
        let mut tx = store.begin().await.expect("begin");
        let (id, _) = tx.upsert_account(&upsert(user_id, provider_id, key, "100.00")).await.expect("upsert");
        tx.commit().await.expect("commit");
        id
    }

    fn query(user_id: UserId) -> TransactionQuery {
        TransactionQuery {
            user_id,
            account_id: None,
            from: None,
            to: None,
            transaction_type: None,
            min_amount: None,
            max_amount: None,
            text: None,
            after: None,
            limit: 100,
        }
    }

    async fn store_transactions(store: &Arc<dyn Store>, transactions: &[Transaction]) {
        let mut tx = store.begin().await.expect("begin");
        tx.insert_transactions(transactions).await.expect("insert");
        tx.commit().await.expect("commit");
    }

    fn ids(transactions: &[Transaction]) -> Vec<TransactionId> {
        transactions.iter().map(|transaction| transaction.id).collect()
    }

    #[tokio::test]
    async fn accounts_are_created_updated_or_left_unchanged_and_owned() {
        on_every_backend(|store, _| async move {
            let (owner, provider) = user_with_provider(&store, "owner@example.com").await;
            let (other, _) = user_with_provider(&store, "other@example.com").await;
            let mut tx = store.begin().await.expect("begin");
            let (id, created) =
                tx.upsert_account(&upsert(owner, provider, "acc-1", "12345678901234.5678")).await.expect("create");
            let (same, unchanged) =
                tx.upsert_account(&upsert(owner, provider, "acc-1", "12345678901234.5678")).await.expect("same");
            let later = AccountUpsert { now: NOW + Duration::hours(1), ..upsert(owner, provider, "acc-1", "-0.01") };
            let (again, updated) = tx.upsert_account(&later).await.expect("update");
            let card = AccountUpsert {
                account_type: AccountType::CreditCard,
                available_balance: Some(dec("4500.10")),
                ..upsert(owner, provider, "acc-2", "-500.00")
            };
            let (card_id, _) = tx.upsert_account(&card).await.expect("card");
            tx.mark_account_synced(id, NOW + Duration::hours(2)).await.expect("synced");
            tx.commit().await.expect("commit");
            assert_eq!((created, unchanged, updated), (Upserted::Created, Upserted::Unchanged, Upserted::Updated));
            assert_eq!((same, again), (id, id));

            let read = store.account(owner, id).await.expect("read").expect("found");
            assert_eq!(read.balance.to_string(), "-0.01");
            assert_eq!((read.created_at, read.updated_at), (NOW, NOW + Duration::hours(1)));
            assert_eq!(read.last_synced_at, Some(NOW + Duration::hours(2)));
            assert_eq!(read.number_masked.as_deref(), Some("••••1234"));
            assert!(read.is_active);
            let card = store.account(owner, card_id).await.expect("read").expect("found");
            assert_eq!(
                (card.balance.to_string(), card.available_balance.map(|b| b.to_string())),
                ("-500.00".to_owned(), Some("4500.10".to_owned()))
            );

            let all = store.accounts(owner, &AccountFilter::default()).await.expect("list");
            assert_eq!(all.iter().map(|account| account.id).collect::<Vec<_>>(), [id, card_id]);
            let cards = AccountFilter { account_type: Some(AccountType::CreditCard), ..AccountFilter::default() };
            assert_eq!(store.accounts(owner, &cards).await.expect("list").len(), 1);
            let by_provider = AccountFilter { provider_id: Some(provider), ..AccountFilter::default() };
            assert_eq!(store.accounts(owner, &by_provider).await.expect("list").len(), 2);
            let elsewhere = AccountFilter { provider_id: Some(ProviderId::generate()), ..AccountFilter::default() };
            assert!(store.accounts(owner, &elsewhere).await.expect("list").is_empty());
            assert_eq!(store.provider(owner, provider).await.expect("provider").expect("found").accounts_count, 2);

            // Another user sees none of it.
            assert!(store.accounts(other, &AccountFilter::default()).await.expect("list").is_empty());
            assert_eq!(store.account(other, id).await.expect("read"), None);
        })
        .await;
    }

    #[tokio::test]
    async fn decimals_round_trip_exactly() {
        on_every_backend(|store, _| async move {
            let (owner, provider) = user_with_provider(&store, "exact@example.com").await;
            let account_id = account(&store, owner, provider, "acc").await;
            let values = ["12345678901234.5678", "-0.01", "0", "100.10", "0.00000001", "-99999999999999.99"];
            let rows: Vec<Transaction> = values
                .iter()
                .enumerate()
                .map(|(day, amount)| {
                    let mut row = purchase(
                        owner,
                        account_id,
                        date!(2026 - 01 - 01) + Duration::days(day as i64),
                        amount,
                        "x",
                        NOW,
                    );
                    row.quantity = Some(dec(amount));
                    row
                })
                .collect();
            store_transactions(&store, &rows).await;
            let read = store.transactions(&query(owner)).await.expect("read");
            let mut amounts: Vec<String> = read.iter().map(|row| row.amount.to_string()).collect();
            amounts.reverse();
            assert_eq!(amounts, values);
            assert!(read.iter().all(|row| row.quantity == Some(row.amount)));
        })
        .await;
    }

    #[tokio::test]
    async fn holdings_are_put_by_symbol_and_only_open_ones_are_listed() {
        on_every_backend(|store, _| async move {
            let (owner, provider) = user_with_provider(&store, "holder@example.com").await;
            let (other, _) = user_with_provider(&store, "nosy@example.com").await;
            let account_id = account(&store, owner, provider, "brokerage").await;
            let holding = |symbol: &str, asset_type: AssetType, value: &str| Holding {
                id: HoldingId::generate(),
                account_id,
                user_id: owner,
                symbol: symbol.to_owned(),
                name: Some(format!("{symbol} Inc.")),
                asset_type,
                quantity: dec("10.5"),
                average_cost: Some(dec("100.00")),
                price: Some(dec("110.00")),
                market_value: dec(value),
                currency: Currency::USD,
                is_open: true,
                as_of: NOW,
            };
            let aapl = holding("AAPL", AssetType::Equity, "1155.00");
            let mut tx = store.begin().await.expect("begin");
            tx.put_holding(&aapl, NOW).await.expect("put");
            tx.put_holding(&holding("VTI", AssetType::Etf, "2000.00"), NOW).await.expect("put");
            tx.put_holding(&holding("OLD", AssetType::Equity, "0"), NOW).await.expect("put");
            // The same symbol again replaces the values but keeps the row.
            let moved = Holding { id: HoldingId::generate(), market_value: dec("1200.00"), ..aapl.clone() };
            tx.put_holding(&moved, NOW + Duration::hours(1)).await.expect("replace");
            tx.put_holding(&Holding { is_open: false, ..holding("OLD", AssetType::Equity, "0") }, NOW)
                .await
                .expect("close");
            let stored = tx.account_holdings(account_id).await.expect("all");
            tx.commit().await.expect("commit");
            assert_eq!(stored.len(), 3);
            assert_eq!(stored.iter().filter(|holding| !holding.is_open).count(), 1);

            let open = store.holdings(owner, &HoldingFilter::default()).await.expect("list");
            assert_eq!(open.iter().map(|holding| holding.symbol.as_str()).collect::<Vec<_>>(), ["AAPL", "VTI"]);
            assert_eq!(open[0].id, aapl.id);
            assert_eq!(open[0].market_value.to_string(), "1200.00");
            assert_eq!(open[0].quantity.to_string(), "10.5");
            let etfs = HoldingFilter { asset_type: Some(AssetType::Etf), ..HoldingFilter::default() };
            assert_eq!(store.holdings(owner, &etfs).await.expect("list").len(), 1);
            let in_account = HoldingFilter { account_id: Some(account_id), ..HoldingFilter::default() };
            assert_eq!(store.holdings(owner, &in_account).await.expect("list").len(), 2);
            assert!(store.holdings(other, &HoldingFilter::default()).await.expect("list").is_empty());
            assert!(store.holdings(other, &in_account).await.expect("list").is_empty());
        })
        .await;
    }

    #[tokio::test]
    async fn transactions_filter_update_and_stay_with_their_owner() {
        on_every_backend(|store, _| async move {
            let (owner, provider) = user_with_provider(&store, "spender@example.com").await;
            let (other, other_provider) = user_with_provider(&store, "stranger@example.com").await;
            let checking = account(&store, owner, provider, "checking").await;
            let card = account(&store, owner, provider, "card").await;
            let foreign = account(&store, other, other_provider, "theirs").await;
            let mut coffee = purchase(owner, checking, date!(2026 - 03 - 01), "-4.50", "Coffee 100% Arabica", NOW);
            coffee.payee = Some("Blue Bottle".to_owned());
            let salary = Transaction {
                transaction_type: TransactionType::Transfer,
                subtype: Some(TransactionSubtype::Deposit),
                ..purchase(owner, checking, date!(2026 - 03 - 15), "2500.00", "ACME PAYROLL", NOW)
            };
            let groceries = purchase(owner, card, date!(2026 - 04 - 02), "-120.35", "Grocery_Store", NOW);
            let big = purchase(owner, card, date!(2026 - 04 - 30), "-1000.00", "Laptop", NOW);
            let theirs = purchase(other, foreign, date!(2026 - 03 - 10), "-4.50", "Coffee", NOW);
            store_transactions(&store, &[coffee.clone(), salary.clone(), groceries.clone(), big.clone()]).await;
            store_transactions(&store, std::slice::from_ref(&theirs)).await;

            let all = store.transactions(&query(owner)).await.expect("all");
            assert_eq!(ids(&all), [big.id, groceries.id, salary.id, coffee.id]);
            assert_eq!(all[3], coffee);
            let by_account = TransactionQuery { account_id: Some(card), ..query(owner) };
            assert_eq!(ids(&store.transactions(&by_account).await.expect("read")), [big.id, groceries.id]);
            let in_march =
                TransactionQuery { from: Some(date!(2026 - 03 - 01)), to: Some(date!(2026 - 03 - 15)), ..query(owner) };
            assert_eq!(ids(&store.transactions(&in_march).await.expect("read")), [salary.id, coffee.id]);
            let transfers = TransactionQuery { transaction_type: Some(TransactionType::Transfer), ..query(owner) };
            assert_eq!(ids(&store.transactions(&transfers).await.expect("read")), [salary.id]);
            let amounts =
                TransactionQuery { min_amount: Some(dec("-120.35")), max_amount: Some(dec("-4.5")), ..query(owner) };
            assert_eq!(ids(&store.transactions(&amounts).await.expect("read")), [groceries.id, coffee.id]);
            let incoming = TransactionQuery { min_amount: Some(dec("0.01")), ..query(owner) };
            assert_eq!(ids(&store.transactions(&incoming).await.expect("read")), [salary.id]);
            for (text, expected) in [
                ("coffee", vec![coffee.id]),
                ("BOTTLE", vec![coffee.id]),
                ("100%", vec![coffee.id]),
                ("%", vec![coffee.id]),
                ("y_s", vec![groceries.id]),
                ("_", vec![groceries.id]),
                ("nothing", vec![]),
            ] {
                let search = TransactionQuery { text: Some(text.to_owned()), ..query(owner) };
                assert_eq!(ids(&store.transactions(&search).await.expect("read")), expected, "{text}");
            }
            let limited = TransactionQuery { limit: 1, ..query(owner) };
            assert_eq!(ids(&store.transactions(&limited).await.expect("read")), [big.id]);

            // Ownership: another user's rows are invisible, even by id or by naming the account.
            assert_eq!(store.transaction(other, coffee.id).await.expect("read"), None);
            assert_eq!(store.transaction(owner, theirs.id).await.expect("read"), None);
            assert_eq!(store.transaction(owner, coffee.id).await.expect("read"), Some(coffee.clone()));
            let snooping = TransactionQuery { account_id: Some(checking), ..query(other) };
            assert!(store.transactions(&snooping).await.expect("read").is_empty());
            assert_eq!(ids(&store.transactions(&query(other)).await.expect("read")), [theirs.id]);

            // A pending row that posts is updated in place.
            let mut tx = store.begin().await.expect("begin");
            let mut matched = tx.account_transactions(checking).await.expect("by account");
            assert_eq!(ids(&matched), [coffee.id, salary.id]);
            let posted = Transaction {
                status: TransactionStatus::Pending,
                amount: dec("-4.75"),
                memo: Some("tip".to_owned()),
                posted_at: Some(datetime!(2026-03-01 08:30:00 UTC)),
                updated_at: NOW + Duration::hours(1),
                ..matched.remove(0)
            };
            tx.update_transaction(&posted).await.expect("update");
            tx.commit().await.expect("commit");
            assert_eq!(store.transaction(owner, coffee.id).await.expect("read"), Some(posted));
        })
        .await;
    }

    #[tokio::test]
    async fn a_cursor_walk_visits_every_row_once_even_while_rows_arrive() {
        on_every_backend(|store, _| async move {
            let (owner, provider) = user_with_provider(&store, "walker@example.com").await;
            let account_id = account(&store, owner, provider, "acc").await;
            // Several rows per day, so the id breaks ties inside a date.
            let rows: Vec<Transaction> = (0..95)
                .map(|n| {
                    purchase(owner, account_id, date!(2026 - 01 - 01) + Duration::days(n / 4), "-1.00", "row", NOW)
                })
                .collect();
            store_transactions(&store, &rows).await;
            let mut seen = Vec::new();
            let mut after = None;
            let mut back_dated = None;
            loop {
                let page =
                    store.transactions(&TransactionQuery { after, limit: 10, ..query(owner) }).await.expect("page");
                if seen.len() == 20 {
                    // New rows land both before and after the cursor's position: the newer one is behind the walk
                    // and never seen, the back-dated one is ahead and seen once, last.
                    let newer = purchase(owner, account_id, date!(2026 - 12 - 31), "-1.00", "late", NOW);
                    let older = purchase(owner, account_id, date!(2025 - 12 - 31), "-1.00", "back-dated", NOW);
                    back_dated = Some(older.id);
                    store_transactions(&store, &[newer, older]).await;
                }
                seen.extend(ids(&page));
                let Some(last) = page.last() else { break };
                after = Some((last.posted_on, last.id));
            }
            assert_eq!(seen.pop(), back_dated);
            let mut expected = rows.clone();
            expected.sort_by_key(|row| std::cmp::Reverse((row.posted_on, row.id)));
            assert_eq!(seen, ids(&expected));
        })
        .await;
    }

    #[tokio::test]
    async fn snapshots_are_read_by_range_and_carried_in_from_before() {
        on_every_backend(|store, _| async move {
            let (owner, provider) = user_with_provider(&store, "saver@example.com").await;
            let (other, other_provider) = user_with_provider(&store, "peer@example.com").await;
            let first = account(&store, owner, provider, "first").await;
            let second = account(&store, owner, provider, "second").await;
            let foreign = account(&store, other, other_provider, "foreign").await;
            let snapshot = |account_id: AccountId, day: i64, balance: &str| BalanceSnapshot {
                account_id,
                as_of: NOW + Duration::days(day),
                balance: dec(balance),
                available_balance: Some(dec(balance)),
                currency: Currency::USD,
                source: SnapshotSource::Sync,
            };
            let mut tx = store.begin().await.expect("begin");
            for (account_id, day, balance) in
                [(first, 0, "10.00"), (first, 1, "11.00"), (first, 3, "13.00"), (second, 2, "-5.50")]
            {
                tx.insert_balance_snapshot(owner, &snapshot(account_id, day, balance)).await.expect("snapshot");
            }
            tx.insert_balance_snapshot(other, &snapshot(foreign, 0, "999.00")).await.expect("snapshot");
            tx.commit().await.expect("commit");

            let all = store.balance_snapshots(owner, None, None, None).await.expect("all");
            assert_eq!(all.len(), 4);
            assert_eq!(all[2], snapshot(second, 2, "-5.50"));
            let first_only = store.balance_snapshots(owner, Some(first), None, None).await.expect("first");
            assert_eq!(first_only.len(), 3);
            // `[from, to)`.
            let window = store
                .balance_snapshots(owner, None, Some(NOW + Duration::days(1)), Some(NOW + Duration::days(3)))
                .await
                .expect("window");
            let balances: Vec<String> = window.iter().map(|snapshot| snapshot.balance.to_string()).collect();
            assert_eq!(balances, ["11.00", "-5.50"]);
            assert!(store.balance_snapshots(other, Some(first), None, None).await.expect("theirs").is_empty());

            let carried = store.latest_snapshots_before(owner, NOW + Duration::days(3)).await.expect("before");
            assert_eq!(carried, [snapshot(first, 1, "11.00"), snapshot(second, 2, "-5.50")]);
            let carried = store.latest_snapshots_before(owner, NOW + Duration::days(2)).await.expect("before");
            assert_eq!(carried, [snapshot(first, 1, "11.00")]);
            assert!(store.latest_snapshots_before(owner, NOW).await.expect("before").is_empty());
        })
        .await;
    }

    #[tokio::test]
    async fn the_scheduler_sees_due_active_connections_and_syncs_are_booked() {
        on_every_backend(|store, _| async move {
            let (owner, never) = user_with_provider(&store, "scheduled@example.com").await;
            let provider = |alias: &str| NewProvider {
                id: ProviderId::generate(),
                user_id: owner,
                provider_key: ProviderKey::FileImport,
                alias: Alias::parse(alias).expect("alias"),
                created_at: NOW,
            };
            let (overdue, later, pending) = (provider("Overdue"), provider("Later"), provider("Pending"));
            let mut tx = store.begin().await.expect("begin");
            for new in [&overdue, &later, &pending] {
                tx.insert_provider(new).await.expect("insert");
            }
            for id in [never, overdue.id, later.id] {
                tx.set_provider_status(id, ProviderStatus::Active, true, NOW).await.expect("active");
            }
            tx.schedule_sync(overdue.id, NOW - Duration::hours(1)).await.expect("schedule");
            tx.schedule_sync(later.id, NOW + Duration::hours(1)).await.expect("schedule");
            tx.schedule_sync(pending.id, NOW - Duration::hours(2)).await.expect("schedule");
            tx.commit().await.expect("commit");

            let due = store.providers_due_for_sync(NOW, 10).await.expect("due");
            assert_eq!(due.iter().map(|provider| provider.id).collect::<Vec<_>>(), [never, overdue.id]);
            assert_eq!(store.providers_due_for_sync(NOW, 1).await.expect("due").len(), 1);
            let due_later = store.providers_due_for_sync(NOW + Duration::hours(1), 10).await.expect("due");
            assert_eq!(due_later.len(), 3);

            let mut tx = store.begin().await.expect("begin");
            assert_eq!(tx.record_sync_failure(overdue.id, "provider timed out", NOW).await.expect("fail"), 1);
            assert_eq!(tx.record_sync_failure(overdue.id, "provider timed out", NOW).await.expect("fail"), 2);
            tx.schedule_sync(overdue.id, NOW + Duration::minutes(10)).await.expect("retry");
            tx.commit().await.expect("commit");
            let failed = store.provider(owner, overdue.id).await.expect("read").expect("found");
            assert_eq!(failed.last_sync_error.as_deref(), Some("provider timed out"));
            assert_eq!(failed.last_sync_at, None);
            assert!(!store.providers_due_for_sync(NOW, 10).await.expect("due").iter().any(|p| p.id == overdue.id));

            let mut tx = store.begin().await.expect("begin");
            tx.record_sync_success(overdue.id, NOW + Duration::minutes(11), NOW + Duration::hours(6))
                .await
                .expect("ok");
            // The failure count starts again from zero after a success.
            assert_eq!(tx.record_sync_failure(never, "x", NOW).await.expect("fail"), 1);
            tx.record_sync_success(never, NOW, NOW + Duration::hours(6)).await.expect("ok");
            assert_eq!(tx.record_sync_failure(never, "y", NOW).await.expect("fail"), 1);
            assert_eq!(tx.record_sync_failure(ProviderId::generate(), "gone", NOW).await.expect("fail"), 0);
            tx.commit().await.expect("commit");
            let synced = store.provider(owner, overdue.id).await.expect("read").expect("found");
            assert_eq!(synced.last_sync_at, Some(NOW + Duration::minutes(11)));
            assert_eq!(synced.last_sync_error, None);
            let due = store.providers_due_for_sync(NOW + Duration::hours(5), 10).await.expect("due");
            assert_eq!(due.iter().map(|provider| provider.id).collect::<Vec<_>>(), [later.id]);
        })
        .await;
    }

    #[tokio::test]
    async fn deleting_a_provider_deletes_its_financial_data() {
        on_every_backend(|store, _| async move {
            let (owner, provider) = user_with_provider(&store, "leaver@example.com").await;
            let account_id = account(&store, owner, provider, "acc").await;
            let row = purchase(owner, account_id, date!(2026 - 01 - 01), "-1.00", "x", NOW);
            store_transactions(&store, std::slice::from_ref(&row)).await;
            let mut tx = store.begin().await.expect("begin");
            let snapshot = BalanceSnapshot {
                account_id,
                as_of: NOW,
                balance: dec("1"),
                available_balance: None,
                currency: Currency::USD,
                source: SnapshotSource::Import,
            };
            tx.insert_balance_snapshot(owner, &snapshot).await.expect("snapshot");
            let holding = Holding {
                id: HoldingId::generate(),
                account_id,
                user_id: owner,
                symbol: "X".to_owned(),
                name: None,
                asset_type: AssetType::Other,
                quantity: dec("1"),
                average_cost: None,
                price: None,
                market_value: dec("1"),
                currency: Currency::USD,
                is_open: true,
                as_of: NOW,
            };
            tx.put_holding(&holding, NOW).await.expect("holding");
            assert!(tx.delete_provider(owner, provider).await.expect("delete"));
            tx.commit().await.expect("commit");
            assert!(store.accounts(owner, &AccountFilter::default()).await.expect("accounts").is_empty());
            assert_eq!(store.transaction(owner, row.id).await.expect("transaction"), None);
            assert!(store.balance_snapshots(owner, None, None, None).await.expect("snapshots").is_empty());
            assert!(store.holdings(owner, &HoldingFilter::default()).await.expect("holdings").is_empty());
        })
        .await;
    }

    #[tokio::test]
    async fn a_large_sync_inserts_in_batches() {
        on_every_backend(|store, _| async move {
            let (owner, provider) = user_with_provider(&store, "bulk@example.com").await;
            let account_id = account(&store, owner, provider, "acc").await;
            let rows: Vec<Transaction> = (0..2_345)
                .map(|n| {
                    purchase(owner, account_id, date!(2020 - 01 - 01) + Duration::days(n % 1000), "-1.25", "bulk", NOW)
                })
                .collect();
            store_transactions(&store, &rows).await;
            let mut tx = store.begin().await.expect("begin");
            assert_eq!(tx.account_transactions(account_id).await.expect("all").len(), rows.len());
        })
        .await;
    }
}

/// Lets tasks just spawned reach the point where they wait for the writer.
async fn let_waiters_queue() {
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
}

async fn user_exists(store: &Arc<dyn Store>, email: &str) -> bool {
    store.user_by_email(&Email::parse(email).expect("valid email")).await.expect("read").is_some()
}

/// After the transactions under test, the writer is free and consistent: a new write commits and reads back.
async fn assert_the_writer_is_free(store: &Arc<dyn Store>) {
    insert(store, &new_user("after@example.com")).await.expect("the writer is free");
    assert!(user_exists(store, "after@example.com").await);
}

#[tokio::test]
async fn concurrent_transactions_commit_or_roll_back_each_on_its_own() {
    // On SQLite, write transactions that wait for each other commit together (group commit): here `first` is
    // released while `dropped` and `last` wait to begin (the pauses let them queue), so the three share a batch,
    // and the one dropped mid-way must take back only its own work.
    on_every_backend(|store, _| async move {
        let mut first = store.begin().await.expect("begin");
        first.insert_user(&new_user("first@example.com")).await.expect("insert");
        let dropped = tokio::spawn({
            let store = Arc::clone(&store);
            async move {
                let mut tx = store.begin().await.expect("begin");
                tx.insert_user(&new_user("dropped@example.com")).await.expect("insert");
                let duplicate = tx.insert_user(&new_user("dropped@example.com")).await;
                assert!(matches!(duplicate, Err(StoreError::Conflict(_))), "{duplicate:?}");
                // Dropped without committing.
            }
        });
        let last = tokio::spawn({
            let store = Arc::clone(&store);
            async move {
                let_waiters_queue().await;
                let mut tx = store.begin().await.expect("begin");
                tx.insert_user(&new_user("last@example.com")).await.expect("insert");
                tx.commit().await
            }
        });
        let_waiters_queue().await;
        let_waiters_queue().await;
        first.commit().await.expect("commit first");
        dropped.await.expect("dropped task");
        last.await.expect("last task").expect("commit last");

        assert!(user_exists(&store, "first@example.com").await);
        assert!(user_exists(&store, "last@example.com").await);
        assert!(!user_exists(&store, "dropped@example.com").await, "a dropped transaction wrote nothing");
        assert_the_writer_is_free(&store).await;
    })
    .await;
}

#[tokio::test]
async fn a_transaction_abandoned_while_waiting_to_begin_or_commit_leaves_the_others_intact() {
    on_every_backend(|store, _| async move {
        let mut holder = store.begin().await.expect("begin");
        holder.insert_user(&new_user("holder@example.com")).await.expect("insert");
        // A caller that gives up while waiting for the writer (a client that disconnects).
        let abandoned_begin = {
            let store = Arc::clone(&store);
            tokio::spawn(async move { drop(store.begin().await) })
        };
        let_waiters_queue().await;
        abandoned_begin.abort();
        // A caller that gives up once its commit is under way.
        let (committing_tx, committing) = tokio::sync::oneshot::channel();
        let abandoned_commit = {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut tx = store.begin().await.expect("begin");
                tx.insert_user(&new_user("gave-up@example.com")).await.expect("insert");
                committing_tx.send(()).expect("test waits");
                // Polled at once after the send: the commit has started before this task first yields.
                tx.commit().await
            })
        };
        let_waiters_queue().await;
        holder.commit().await.expect("commit holder");
        committing.await.expect("the commit started");
        abandoned_commit.abort();
        let _ = abandoned_commit.await;

        // A commit that was under way when its caller left still happens, in full or not at all.
        let finished = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            loop {
                if user_exists(&store, "gave-up@example.com").await {
                    break;
                }
                let_waiters_queue().await;
            }
        })
        .await;
        assert!(finished.is_ok(), "the abandoned commit's batch never committed");
        assert!(user_exists(&store, "holder@example.com").await);
        assert_the_writer_is_free(&store).await;
    })
    .await;
}

#[tokio::test]
async fn a_bulk_transaction_does_not_hold_up_the_commits_before_it() {
    on_every_backend(|store, _| async move {
        let mut short = store.begin().await.expect("begin");
        short.insert_user(&new_user("short@example.com")).await.expect("insert");
        let (began_tx, began) = tokio::sync::oneshot::channel();
        let (finish_tx, finish) = tokio::sync::oneshot::channel::<()>();
        let bulk = tokio::spawn({
            let store = Arc::clone(&store);
            async move {
                let mut tx = store.begin_bulk().await.expect("begin bulk");
                tx.insert_user(&new_user("bulk@example.com")).await.expect("insert");
                began_tx.send(()).expect("test waits");
                // Still running, as an import would be, until the test says.
                finish.await.expect("test says");
                tx.commit().await
            }
        });
        let_waiters_queue().await;
        // `short` is released while `bulk` waits to begin; its commit must not wait for `bulk` to finish.
        let committed = tokio::time::timeout(std::time::Duration::from_secs(5), short.commit()).await;
        committed.expect("the short commit waited for the bulk transaction").expect("commit short");
        assert!(user_exists(&store, "short@example.com").await);
        began.await.expect("bulk began");
        assert!(!user_exists(&store, "bulk@example.com").await, "not committed yet");
        finish_tx.send(()).expect("bulk waits");
        bulk.await.expect("bulk task").expect("commit bulk");
        assert!(user_exists(&store, "bulk@example.com").await);
    })
    .await;
}
