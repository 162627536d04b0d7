//! The provider catalog: which kinds of provider exist, how each authenticates, and which are usable with
//! the current configuration (a provider type is configured when the server holds a connector for it).

use std::collections::HashMap;
use std::sync::Arc;

use crate::connector::Connector;

/// A kind of provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProviderKey {
    /// Charles Schwab (OAuth 2.0).
    Schwab,
    /// Alpaca (API key and secret).
    Alpaca,
    /// The built-in sandbox brokerage, spoken to through the Schwab connector.
    Sandbox,
    /// Statement files (OFX/QFX/CSV) uploaded by the user.
    FileImport,
}

/// How a provider type authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthType {
    /// OAuth 2.0 authorization-code flow.
    OAuth2,
    /// An API key pair the user supplies.
    ApiKey,
    /// No credentials: data arrives as uploaded files.
    File,
}

impl AuthType {
    /// The served text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OAuth2 => "oauth2",
            Self::ApiKey => "api_key",
            Self::File => "file",
        }
    }
}

/// What the catalog says about a provider type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderTypeInfo {
    /// Its key.
    pub key: ProviderKey,
    /// Its name for people.
    pub name: &'static str,
    /// What kind of institution it is (`brokerage`, `file`).
    pub provider_type: &'static str,
    /// How it authenticates.
    pub auth_type: AuthType,
    /// One sentence for people.
    pub description: &'static str,
    /// What it can supply.
    pub supported_features: &'static [&'static str],
}

const BROKERAGE_FEATURES: &[&str] = &["accounts", "holdings", "transactions", "balances"];

impl ProviderKey {
    /// Every provider type, in catalog order.
    pub const ALL: [ProviderKey; 4] = [Self::Schwab, Self::Alpaca, Self::Sandbox, Self::FileImport];

    /// The stored and served text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Schwab => "schwab",
            Self::Alpaca => "alpaca",
            Self::Sandbox => "sandbox",
            Self::FileImport => "file_import",
        }
    }

    /// The key named by `text`.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|key| key.as_str() == text)
    }

    /// What the catalog says about it.
    pub fn info(self) -> ProviderTypeInfo {
        match self {
            Self::Schwab => ProviderTypeInfo {
                key: self,
                name: "Charles Schwab",
                provider_type: "brokerage",
                auth_type: AuthType::OAuth2,
                description: "Brokerage and retirement accounts at Charles Schwab, connected through Schwab's OAuth 2.0 \
                              Trader API.",
                supported_features: BROKERAGE_FEATURES,
            },
            Self::Alpaca => ProviderTypeInfo {
                key: self,
                name: "Alpaca",
                provider_type: "brokerage",
                auth_type: AuthType::ApiKey,
                description: "An Alpaca brokerage account, connected with an API key and secret.",
                supported_features: BROKERAGE_FEATURES,
            },
            Self::Sandbox => ProviderTypeInfo {
                key: self,
                name: "Sandbox Brokerage",
                provider_type: "brokerage",
                auth_type: AuthType::OAuth2,
                description: "A pretend brokerage served by this server, with realistic demo data: try the whole \
                              connect-and-sync flow without a real account.",
                supported_features: BROKERAGE_FEATURES,
            },
            Self::FileImport => ProviderTypeInfo {
                key: self,
                name: "Statement files",
                provider_type: "file",
                auth_type: AuthType::File,
                description: "Accounts and transactions imported from OFX, QFX or CSV statement files.",
                supported_features: &["accounts", "holdings", "transactions"],
            },
        }
    }
}

/// The connectors this server was configured with, by provider type.
#[derive(Debug, Clone, Default)]
pub struct ProviderCatalog {
    connectors: HashMap<ProviderKey, Arc<dyn Connector>>,
}

impl ProviderCatalog {
    /// A catalog with no connectors (only file imports are configured).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the connector for `key`.
    pub fn with_connector(mut self, key: ProviderKey, connector: Arc<dyn Connector>) -> Self {
        self.connectors.insert(key, connector);
        self
    }

    /// Whether `key` can be used now: file imports always, others when their connector is configured.
    pub fn is_configured(&self, key: ProviderKey) -> bool {
        key.info().auth_type == AuthType::File || self.connectors.contains_key(&key)
    }

    /// The connector for `key`, when configured.
    pub fn connector(&self, key: ProviderKey) -> Option<&Arc<dyn Connector>> {
        self.connectors.get(&key)
    }
}
