//! `dashtam keys rotate` (API.md §8): stored provider credentials re-encrypted under the active key, batch by
//! batch, idempotently, with unreadable ones reported without stopping the rest, and one audit entry.

use axum::http::StatusCode;
use dashtam_adapters::encryption::EncryptionKeyring;
use dashtam_domain::ports::StoreBackend;
use dashtam_domain::providers::key_rotation::reencrypt_credentials;
use dashtam_domain::providers::service::credentials_location;
use dashtam_domain::providers::{CredentialKind, KeyRotationReport, ProviderId, StoredCredentials};
use dashtam_domain::secrets::{SecretCipher, SecretCipherError, SecretLocation};
use dashtam_domain::{Email, RequestContext, Role};
use dashtam_server::cli::KeyKind;
use dashtam_server::keys;
use dashtam_testkit::http::*;
use dashtam_testkit::{Backend, TestApp, TestDatabase};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

fn encryption_key(kid: &str) -> String {
    let date = time::OffsetDateTime::now_utc().date();
    keys::generate(KeyKind::Encryption, Some(kid), date).expect("generate").expose_secret().to_owned()
}

/// An application on `database` whose encryption keyring is `keyring`, with an Alpaca fake at `alpaca_url`.
async fn app_with_keyring(database: TestDatabase, keyring: &str, alpaca_url: &str) -> TestApp {
    let (keyring, alpaca_url) = (keyring.to_owned(), alpaca_url.to_owned());
    TestApp::spawn_configured(database, move |config| {
        config.rate_limit.enabled = false;
        config.keys.encryption = Some(SecretString::from(keyring));
        config.alpaca.base_url = alpaca_url.parse().expect("url");
    })
    .await
}

/// Another application on the same database (the same deployment restarted with another keyring).
async fn same_database(app: &TestApp, keyring: &str, alpaca_url: &str) -> TestApp {
    let url = app.config.database_url().expose_secret().to_owned();
    let backend = match app.state.store.backend() {
        StoreBackend::Sqlite => Backend::Sqlite,
        StoreBackend::Postgres => Backend::Postgres,
    };
    app_with_keyring(TestDatabase::unmanaged(url, backend), keyring, alpaca_url).await
}

fn key_id(secret: &[u8]) -> String {
    EncryptionKeyring::key_id_of(secret).expect("a readable header").to_owned()
}

fn counts(report: &KeyRotationReport) -> (u64, u64, u64, u64, usize) {
    (report.examined, report.reencrypted, report.already_current, report.changed_meanwhile, report.failed.len())
}

#[tokio::test]
async fn rotation_reencrypts_every_credential_under_the_active_key_once_and_reports_unreadable_ones() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let alpaca = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/account"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "904837e3-3b76-47ec-b432-046db621571b", "account_number": "PA3HGR8CB9HZ", "status": "ACTIVE",
            "currency": "USD", "cash": "1000.00", "portfolio_value": "1500.25", "equity": "1500.25",
            "buying_power": "2000.00"
        })))
        .mount(&alpaca)
        .await;
    let (key_a, key_b) = (encryption_key("key-a"), encryption_key("key-b"));
    for database in TestDatabase::every_backend().await {
        let backend = database.backend;
        let app_a = app_with_keyring(database, &key_a, &alpaca.uri()).await;
        let token = created_and_logged_in(&app_a, "owner@example.com", Role::User).await.access;
        let user = app_a
            .state
            .auth
            .find_user(&Email::parse("owner@example.com").expect("email"))
            .await
            .expect("find")
            .expect("user");
        // Five connections under key A: more than one batch of two.
        let mut ids = Vec::new();
        for index in 0..5 {
            let body = json!({"provider_key": "alpaca", "alias": format!("Alpaca {index}")});
            let (status, created) = post_as(&app_a, &token, "/api/v1/providers", body).await;
            assert_eq!(status, StatusCode::CREATED, "{created}");
            let id = created["id"].as_str().expect("id").to_owned();
            let credentials = json!({"api_key": format!("PKTEST{index}"), "api_secret": format!("secret-{index}")});
            let (status, body) =
                post_as(&app_a, &token, &format!("/api/v1/providers/{id}/credentials"), credentials).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            ids.push(ProviderId::from_uuid(id.parse().expect("uuid")));
        }
        // Someone with database access alters one stored secret.
        let store = app_a.state.store.clone();
        let tampered_id = ids[3];
        let original = store.provider_credentials(tampered_id).await.expect("read").expect("stored").secret;
        let mut tampered = original.clone();
        *tampered.last_mut().expect("not empty") ^= 1;
        let mut tx = store.begin().await.expect("begin");
        assert!(tx.replace_credentials_secret(tampered_id, &original, &tampered).await.expect("tamper"));
        tx.commit().await.expect("commit");
        let stored = store.credentials_after(None, 100).await.expect("credentials");
        assert!(stored.iter().all(|credentials| key_id(&credentials.secret) == "key-a"));

        // Key B made active, A kept: the walk re-encrypts the other four, two per batch, and reports the fifth.
        let keyring_ba = EncryptionKeyring::parse(&SecretString::from(format!("{key_b},{key_a}"))).expect("keyring");
        let context = RequestContext::command_line("keys rotate");
        let report =
            reencrypt_credentials(&*store, &app_a.state.audit, &keyring_ba, &context, 2).await.expect("rotate");
        assert_eq!(report.active_key_id, "key-b");
        assert_eq!(counts(&report), (5, 4, 0, 0, 1), "{backend:?}: {report:?}");
        assert_eq!(report.failed, vec![(tampered_id, SecretCipherError::AuthenticationFailed)]);
        assert!(!report.is_complete());
        for credentials in store.credentials_after(None, 100).await.expect("credentials") {
            let expected = if credentials.provider_id == tampered_id { "key-a" } else { "key-b" };
            assert_eq!(key_id(&credentials.secret), expected, "{backend:?}");
        }

        // The server restarted with `B,A` runs it again: nothing left to do.
        let app_ba = same_database(&app_a, &format!("{key_b},{key_a}"), &alpaca.uri()).await;
        let again = app_ba.state.providers.reencrypt_credentials(&context).await.expect("rotate again");
        assert_eq!(counts(&again), (5, 0, 4, 0, 1), "{backend:?}: {again:?}");

        // The old key removed: every connection still works, and the tampered one is reported by id.
        let app_b = same_database(&app_a, &key_b, &alpaca.uri()).await;
        for (index, id) in ids.iter().enumerate() {
            let provider = app_b.state.providers.get(user.id, *id).await.expect("provider");
            let access = app_b.state.providers.access(&provider, &context).await;
            if *id == tampered_id {
                assert!(access.is_err(), "{backend:?}");
                continue;
            }
            let access = access.expect("decrypts under key B alone");
            let dashtam_domain::connector::ProviderAuth::ApiKey(credentials) = access.auth() else {
                panic!("an API key connection");
            };
            assert_eq!(credentials.api_key.expose_secret(), format!("PKTEST{index}"));
            assert_eq!(credentials.api_secret.expose_secret(), format!("secret-{index}"));
        }
        let without_a = app_b.state.providers.reencrypt_credentials(&context).await.expect("rotate under B alone");
        assert_eq!(counts(&without_a), (5, 0, 4, 0, 1), "{backend:?}: {without_a:?}");
        assert_eq!(without_a.failed, vec![(tampered_id, SecretCipherError::UnknownKeyId { kid: "key-a".to_owned() })]);

        // One audit entry per run, by the operator, with the counts; the chain still verifies.
        let entries = store.audit_entries_after(0, 1000).await.expect("audit");
        let rotations: Vec<_> = entries.iter().filter(|entry| entry.action == "keys.rotated").collect();
        assert_eq!(rotations.len(), 3, "{backend:?}");
        let first = rotations[0];
        assert_eq!(first.actor, "operator");
        assert_eq!(first.route.as_deref(), Some("keys rotate"));
        let details: Value = serde_json::from_str(&first.details).expect("json");
        assert_eq!(
            details,
            json!({
                "active_key_id": "key-b", "examined": 5, "reencrypted": 4, "already_current": 0,
                "changed_meanwhile": 0, "failed": 1, "failed_provider_ids": [tampered_id.to_string()]
            })
        );
        assert!(!first.details.contains("secret-") && !first.details.contains("PKTEST"));
        app_b.state.audit.verify().await.expect("the chain verifies");
    }
}

/// The active keyring, except that while one connection's secret is being re-encrypted a token refresh
/// rewrites it (under the old key, as an instance not yet restarted would).
#[derive(Debug)]
struct RefreshedMeanwhile {
    keyring: EncryptionKeyring,
    old_keyring: EncryptionKeyring,
    store: std::sync::Arc<dyn dashtam_domain::ports::Store>,
    id: ProviderId,
}

impl SecretCipher for RefreshedMeanwhile {
    fn active_key_id(&self) -> &str {
        self.keyring.active_kid()
    }

    fn encrypt(&self, plaintext: &[u8], location: &SecretLocation<'_>) -> Result<Vec<u8>, SecretCipherError> {
        self.keyring.encrypt(plaintext, location)
    }

    fn decrypt(
        &self,
        ciphertext: &[u8],
        location: &SecretLocation<'_>,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, SecretCipherError> {
        self.keyring.decrypt(ciphertext, location)
    }

    fn needs_reencryption(&self, ciphertext: &[u8]) -> bool {
        self.keyring.needs_reencryption(ciphertext)
    }

    fn reencrypt(&self, ciphertext: &[u8], location: &SecretLocation<'_>) -> Result<Vec<u8>, SecretCipherError> {
        let reencrypted = self.keyring.reencrypt(ciphertext, location)?;
        if location.row_id == self.id.to_string() {
            let plaintext = self.old_keyring.decrypt(ciphertext, location)?;
            let refreshed = self.old_keyring.encrypt(&plaintext, location)?;
            let (store, id, expected) = (self.store.clone(), self.id, ciphertext.to_vec());
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async move {
                    let mut tx = store.begin().await.expect("begin");
                    assert!(tx.replace_credentials_secret(id, &expected, &refreshed).await.expect("refresh"));
                    tx.commit().await.expect("commit");
                })
            });
        }
        Ok(reencrypted)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_refreshed_during_rotation_is_kept_and_picked_up_by_the_next_run() {
    let (key_a, key_b) = (encryption_key("key-a"), encryption_key("key-b"));
    for database in TestDatabase::every_backend().await {
        let backend = database.backend;
        let app = app_with_keyring(database, &key_a, "http://127.0.0.1:9").await;
        let token = created_and_logged_in(&app, "owner@example.com", Role::User).await.access;
        let mut ids = Vec::new();
        for alias in ["One", "Two"] {
            let (status, created) =
                post_as(&app, &token, "/api/v1/providers", json!({"provider_key": "sandbox", "alias": alias})).await;
            assert_eq!(status, StatusCode::CREATED, "{created}");
            ids.push(ProviderId::from_uuid(created["id"].as_str().expect("id").parse().expect("uuid")));
        }
        let keyring_a = EncryptionKeyring::parse(&SecretString::from(key_a.clone())).expect("keyring");
        let now = time::OffsetDateTime::now_utc();
        let mut tx = app.state.store.begin().await.expect("begin");
        for id in &ids {
            let row_id = id.to_string();
            let plaintext = br#"{"kind":"oauth2","access_token":"at","refresh_token":"rt"}"#;
            let secret = keyring_a.encrypt(plaintext, &credentials_location(&row_id)).expect("encrypt");
            let stored = StoredCredentials {
                provider_id: *id,
                kind: CredentialKind::OAuth2,
                secret,
                access_expires_at: None,
                has_refresh_token: true,
                scope: None,
                connected_at: now,
                updated_at: now,
            };
            tx.put_credentials(&stored).await.expect("store");
        }
        tx.commit().await.expect("commit");

        let keyring_ba = || EncryptionKeyring::parse(&SecretString::from(format!("{key_b},{key_a}"))).expect("keyring");
        let racing = RefreshedMeanwhile {
            keyring: keyring_ba(),
            old_keyring: EncryptionKeyring::parse(&SecretString::from(key_a.clone())).expect("keyring"),
            store: app.state.store.clone(),
            id: ids[0],
        };
        let context = RequestContext::command_line("keys rotate");
        let store = &*app.state.store;
        let report = reencrypt_credentials(store, &app.state.audit, &racing, &context, 100).await.expect("rotate");
        assert_eq!(counts(&report), (2, 1, 0, 1, 0), "{backend:?}: {report:?}");
        assert!(!report.is_complete());
        // The refresh's value was kept (the rotation did not overwrite it); the other one moved to key B.
        let current = store.provider_credentials(ids[0]).await.expect("read").expect("stored").secret;
        assert_eq!(key_id(&current), "key-a");
        let other = store.provider_credentials(ids[1]).await.expect("read").expect("stored").secret;
        assert_eq!(key_id(&other), "key-b");

        let report = reencrypt_credentials(store, &app.state.audit, &keyring_ba(), &context, 100).await.expect("rerun");
        assert_eq!(counts(&report), (2, 1, 1, 0, 0), "{backend:?}: {report:?}");
        assert!(report.is_complete());
        let current = store.provider_credentials(ids[0]).await.expect("read").expect("stored").secret;
        assert_eq!(key_id(&current), "key-b");
    }
}
